"""A retrieval corpus encoded from a teacher cache: the corpus is indexed once, by the teacher, and reused.

    talas cache --train_data_path corpus.csv --teacher_model_name <teacher> --cache_path cache/corpus.safetensors
    talas eval --query_model <student> --corpus_model <teacher> --corpus_cache cache/corpus.safetensors

``CachedCorpus`` is an ``encode(texts)`` callable for talas.eval.evaluate: texts found in the cache come
from it, the others are encoded by the corpus model. The cache is trusted only after its chunk
checksums pass and a sample of its texts, encoded again by the corpus model as the cache was built
(the cache's max_length), agree with the stored vectors: a cache of another teacher, pooling or
prompt is refused instead of silently scoring the wrong index.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

from talas.cache.format import TeacherCache, describe_bad, open_cache
from talas.errors import CacheError, ConfigError

# Texts re-encoded to check that the cache holds the corpus model's vectors, and the cosine each must reach
# (a float16 or bfloat16 cache, or a teacher run in bfloat16 when it was built, stays above 0.995).
SPOT_CHECK_TEXTS = 16
SPOT_CHECK_COSINE = 0.99


def open_corpus_cache(path: str) -> TeacherCache:
    """Open a finished cache file and check its chunk checksums (as training does before trusting one)."""
    if not os.path.isfile(path):
        raise ConfigError(f"--corpus_cache {path!r} is not a file. Pass a finished cache file (`talas cache --list` names them).")
    cache = open_cache(path)
    bad, _ = cache.open_check()
    if bad:
        raise CacheError(f"--corpus_cache {path}: {describe_bad(cache.manifest, cache.count, bad)} fail their checksum; "
                         "run `talas cache --verify` and rebuild it.")
    return cache


class CachedCorpus:
    """encode(texts) from the cache where it holds the text, else from the corpus model."""

    def __init__(self, cache: TeacherCache, encode: Callable[[list[str]], np.ndarray], corpus: Sequence[str], model: str):
        self.cache, self.encode, self.model = cache, encode, model
        self.row_of = {text: row for row, text in enumerate(cache.texts())}
        self.from_cache = 0
        self.encoded = 0
        covered = sorted({t for t in corpus if t in self.row_of})
        if not covered:
            raise ConfigError(f"--corpus_cache {cache.path} holds none of the {len(set(corpus))} corpus texts of the chosen "
                              "tasks. Build it from the corpus file (`talas cache --train_data_path CORPUS ...`) or drop it.")
        self.spot_check(covered)

    def spot_check(self, covered: list[str]) -> None:
        picked = [covered[i] for i in np.random.default_rng(0).permutation(len(covered))[:SPOT_CHECK_TEXTS]]
        stored = self.cache.gather(np.array([self.row_of[t] for t in picked])).numpy()
        fresh = np.asarray(self.encode(picked), dtype=np.float32)
        if fresh.shape != stored.shape:
            raise ConfigError(f"--corpus_cache {self.cache.path} holds {stored.shape[1]}-d vectors but --corpus_model "
                              f"{self.model} gives {fresh.shape[1]}-d ones: the cache was built by another model.")
        cosine = (fresh * stored).sum(1) / np.maximum(np.linalg.norm(fresh, axis=1) * np.linalg.norm(stored, axis=1), 1e-12)
        if cosine.min() < SPOT_CHECK_COSINE:
            m = self.cache.manifest
            raise ConfigError(
                f"--corpus_cache {self.cache.path} does not hold the vectors of --corpus_model {self.model}: {len(picked)} "
                f"of its texts encoded again reach cosine {cosine.min():.3f} (< {SPOT_CHECK_COSINE}) with the stored ones. "
                f"The cache was built by {m.get('teacher')} (revision {m.get('teacher_revision')}, pooling {m.get('pooling')}, "
                f"prompt {m.get('prompt')!r}); pass that model (and --corpus_pooling / --corpus_prompt), or drop --corpus_cache."
            )

    def __call__(self, texts: list[str]) -> np.ndarray:
        rows = np.array([self.row_of.get(t, -1) for t in texts], dtype=np.int64)
        hit = rows >= 0
        out = np.empty((len(texts), self.cache.dim), dtype=np.float32)
        if hit.any():
            out[hit] = self.cache.gather(rows[hit]).numpy()
        if not hit.all():
            out[~hit] = np.asarray(self.encode([t for t, h in zip(texts, hit, strict=True) if not h]), dtype=np.float32)
        self.from_cache += int(hit.sum())
        self.encoded += int((~hit).sum())
        return out
