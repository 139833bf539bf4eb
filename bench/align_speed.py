"""Alignments per second of talas/align/groups.py on the bundled training texts, for (a) span, (b) dtw, (c) mined.

    .venv/bin/python bench/align_speed.py --n 10000 --repeats 3      # add --qwen25 for Qwen2.5's byte BPE too

Student all-MiniLM-L6-v2, teacher all-mpnet-base-v2 (and optionally Qwen2.5's tokenizer, which
splits words into far more pieces). Views are built once (tokenisation with offsets, timed apart);
each alignment then runs over all texts, `repeats` times with the edit-distance memo cleared
first, as a training run aligns each unique text once. Reports medians; writes bench/out/align_speed.json.
In the same run, (b) is also timed with the textbook O(len(a) * len(b)) edit distance in place of
the bit-parallel one, so the speed-up is a ratio measured side by side.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import ROOT, TRAIN_TEXTS, machine, minilm_path, mpnet_path, qwen25_tokenizer_path  # noqa: E402


def load_texts(n: int) -> list[str]:
    with open(TRAIN_TEXTS, newline="", encoding="utf-8") as f:
        texts = [row["text"] for row in csv.DictReader(f)]
    return list(dict.fromkeys(texts))[:n]


def views(tokenizer, texts, max_length):
    from talas.align.views import view_of

    return [view_of(tokenizer, t, lowercase=True, max_length=max_length) for t in texts]


def plain_edit_distance(a: str, b: str) -> int:
    """The textbook dynamic programme, only as the baseline of the side-by-side timing."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def timed(fn, student, teacher, repeats):
    from talas.align.groups import edit_distance

    seconds = []
    for _ in range(repeats):
        edit_distance.cache_clear()
        start = time.perf_counter()
        for s, t in zip(student, teacher, strict=True):
            fn(s, t)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def main():
    from transformers import AutoTokenizer

    from talas.align.groups import dtw_groups, mined_pairs, span_groups

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max_length", type=int, default=256)
    parser.add_argument("--qwen25", action="store_true", help="also align against Qwen2.5's byte-level BPE")
    args = parser.parse_args()

    texts = load_texts(args.n)
    student_tok = AutoTokenizer.from_pretrained(minilm_path())
    teachers = {"all-mpnet-base-v2": mpnet_path()}
    if args.qwen25:
        teachers["Qwen2.5 (byte BPE)"] = qwen25_tokenizer_path()
    start = time.perf_counter()
    student = views(student_tok, texts, args.max_length)
    result = {"machine": machine(), "texts": len(texts), "repeats": args.repeats, "max_length": args.max_length,
              "student_view_s": round(time.perf_counter() - start, 2),
              "student_tokens_mean": round(statistics.mean(len(v) for v in student), 1), "teachers": {}}
    for name, path in teachers.items():
        start = time.perf_counter()
        teacher = views(AutoTokenizer.from_pretrained(path), texts, args.max_length)
        row = {"view_s": round(time.perf_counter() - start, 2), "tokens_mean": round(statistics.mean(len(v) for v in teacher), 1)}
        for label, fn in (("span", span_groups), ("dtw", dtw_groups), ("mined", mined_pairs)):
            seconds = timed(fn, student, teacher, args.repeats)
            row[label] = {"median_s": round(seconds, 3), "per_s": round(len(texts) / seconds)}
        # Interleaved with the bit-parallel runs, so both see the same machine load.
        import talas.align.groups as align

        bit_parallel, plain = align.edit_distance, functools.lru_cache(maxsize=1 << 18)(plain_edit_distance)
        pairs = []
        try:
            for _ in range(args.repeats):
                align.edit_distance = bit_parallel
                fast = timed(dtw_groups, student, teacher, 1)
                align.edit_distance = plain
                pairs.append((fast, timed(dtw_groups, student, teacher, 1)))
        finally:
            align.edit_distance = bit_parallel
        seconds = statistics.median(p for _, p in pairs)
        row["dtw_plain_dp"] = {"median_s": round(seconds, 3), "per_s": round(len(texts) / seconds),
                               "bit_parallel_speedup": round(statistics.median(p / f for f, p in pairs), 2)}
        result["teachers"][name] = row
        print(name, row, flush=True)
    os.makedirs(os.path.join(ROOT, "bench", "out"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "out", "align_speed.json"), "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
