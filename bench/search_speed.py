"""Exact retrieval search speed (talas.eval.metrics.exact_search): `python bench/search_speed.py`.

1,000 random queries against random corpora of 100k x 384, 100k x 768 and 1M x 384 float32
vectors, top 100 each; prints seconds and queries per second (docs/evaluation.md, "Retrieval").
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from talas.eval import metrics  # noqa: E402


def main() -> int:
    rng = np.random.default_rng(0)
    for size, dim in ((100_000, 384), (100_000, 768), (1_000_000, 384)):
        corpus = rng.standard_normal((size, dim), dtype=np.float32)
        queries = rng.standard_normal((1000, dim), dtype=np.float32)
        began = time.perf_counter()
        metrics.exact_search(queries, corpus, 100)
        seconds = time.perf_counter() - began
        print(f"{size:,} documents x {dim}: 1,000 queries, top 100, in {seconds:.1f} s ({1000 / seconds:.0f} queries/s)")
        del corpus
    return 0


if __name__ == "__main__":
    sys.exit(main())
