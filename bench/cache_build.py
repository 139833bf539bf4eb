"""Teacher-cache build throughput: `python bench/cache_build.py [--texts N] [--repeats 3]`.

Three ways to embed the bundled training texts with the same teacher (all-MiniLM-L6-v2), in
one process, interleaved per repeat (rotating which goes first) so machine noise hits all alike:
- ours:  talas.cache.build.build_cache (unique texts, length-sorted dynamic padding, inference mode,
         chunked resumable writes to a memory-mapped file);
- naive: the reference implementation's way: every row in original order, padded to max_length,
         duplicates embedded again, vectors kept in a Python list and saved with torch.save;
- raw:   the teacher's forward passes alone on the same sorted unique batches (no cache writes),
         i.e. the floor our overhead is measured against.
Prints texts/s medians and the ratios ours/naive and ours/raw.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import TRAIN_TEXTS, machine, minilm_path  # noqa: E402


def naive(teacher, rows: list[str], batch_size: int, path: str) -> None:
    import torch

    vectors = []
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            feats = teacher.tokenizer(batch, padding="max_length", truncation=True, max_length=teacher.max_length, return_tensors="pt")
            feats = {k: v.to(teacher.device) for k, v in feats.items()}
            hidden = teacher.model(input_ids=feats["input_ids"], attention_mask=feats["attention_mask"]).last_hidden_state
            from talas.models.encoder import pool

            vectors.extend(pool(hidden, feats["attention_mask"], teacher.pooling).float().cpu())
    torch.save({"teacher_cls": vectors, "metadata": {"num_samples": len(vectors)}}, path)


def raw(teacher, unique: list[str], batch_size: int) -> None:
    import torch

    ids = teacher.token_ids(unique)
    order = sorted(range(len(unique)), key=lambda i: -len(ids[i]))
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            feats = teacher.pad([ids[i] for i in order[start : start + batch_size]])
            last = teacher({k: v.to(teacher.device) for k, v in feats.items()})
    if last.is_cuda:
        torch.cuda.synchronize()  # kernels run asynchronously: count them all in the timing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=0, help="Use the first N rows (0 = all 19,173).")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--max_length", type=int, default=128)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (bf16 teacher on cuda, as talas does).")
    args = parser.parse_args()

    from dataclasses import replace

    from talas.cache.build import build_cache
    from talas.cache.ensure import cache_key
    from talas.methods.talas import TalasConfig
    from talas.models.encoder import Encoder

    with open(TRAIN_TEXTS, encoding="utf-8") as handle:
        rows = [r["text"] for r in csv.DictReader(handle)]
    rows = rows[: args.texts] if args.texts else rows
    unique = list(dict.fromkeys(rows))
    teacher_path = minilm_path()
    import torch

    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    teacher = Encoder.load(teacher_path, "mean", args.max_length, dtype=dtype).to(args.device).eval()
    cfg = replace(TalasConfig(), teacher_model_name=teacher_path, pooling_method="mean", max_length=args.max_length,
                  teacher_dtype="bfloat16" if dtype == torch.bfloat16 else "float32")
    key = cache_key(cfg, unique)
    results: dict[str, list[float]] = {"ours": [], "naive": [], "raw": []}
    with tempfile.TemporaryDirectory() as tmp:
        names = list(results)
        for repeat in range(args.repeats):
            # Rotate who goes first, so warm-up and drift do not always favour the same builder.
            for name in names[repeat % 3 :] + names[: repeat % 3]:
                start = time.perf_counter()
                if name == "ours":
                    path = os.path.join(tmp, f"c{repeat}.safetensors")
                    build_cache(path, unique, key, lambda: teacher, batch_size=args.batch_size, progress=False)
                elif name == "naive":
                    naive(teacher, rows, args.batch_size, os.path.join(tmp, f"n{repeat}.pt"))
                else:
                    raw(teacher, unique, args.batch_size)
                results[name].append(len(rows) / (time.perf_counter() - start))
    med = {k: statistics.median(v) for k, v in results.items()}
    print(json.dumps({
        "machine": machine(), "rows": len(rows), "unique": len(unique), "batch_size": args.batch_size,
        "max_length": args.max_length, "texts_per_s": {k: round(v, 1) for k, v in med.items()},
        "ours_over_naive": round(med["ours"] / med["naive"], 2), "ours_over_raw": round(med["ours"] / med["raw"], 3),
    }))


if __name__ == "__main__":
    main()
