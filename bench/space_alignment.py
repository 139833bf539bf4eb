"""How closely a student's vectors land on its teacher's: `python bench/space_alignment.py CACHE MODEL [MODEL ...]`.

For the first 300 texts of a teacher cache (e.g. bench/out/retrieval/qnli_test_corpus_mpnet.safetensors,
written by bench/retrieval.py): the mean cosine between each model's vector of a text and the cached
teacher vector of the same text, and how often the text's own teacher vector is the nearest of the
300 (top-1). Explains when student queries work against the teacher's index (BENCHMARKS.md, "Retrieval").
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TEXTS = 300


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main(argv: list[str]) -> int:
    from sentence_transformers import SentenceTransformer

    from talas.cache.format import open_cache

    cache = open_cache(argv[0])
    texts = cache.texts()[:TEXTS]
    teacher = unit(cache.gather(np.arange(len(texts))).numpy())
    for path in argv[1:]:
        model = SentenceTransformer(path, device="cpu")
        model.max_seq_length = int(cache.manifest["max_length"])
        student = unit(model.encode(texts, batch_size=64))
        cosine = float((student * teacher).sum(1).mean())
        top1 = float(((student @ teacher.T).argmax(1) == np.arange(len(texts))).mean())
        print(f"{path}: mean cosine to the teacher {cosine:.3f}, own text nearest {100 * top1:.0f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
