"""Cache read cost at scale: `python bench/cache_scale.py [--rows 1000000] [--dim 1024]`.

Writes a synthetic N×D float16 cache in our format and, for comparison, the seed's format (a
``.pt`` dict holding a list of N tensors), then in fresh subprocesses measures: time to open,
resident memory after opening (before any read), and time to gather random batches of 128 rows.
Medians of --repeats runs. Files go to bench/out/ (several GB at the default size).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "out")

PROBE = r"""
import json, sys, time, numpy as np, psutil, torch
kind, path, batches = sys.argv[1], sys.argv[2], int(sys.argv[3])
proc = psutil.Process()
rss0 = proc.memory_info().rss
t0 = time.perf_counter()
if kind == "talas":
    from talas.cache import open_cache
    cache = open_cache(path)
    gather = cache.gather
    n = cache.count
else:
    legacy = torch.load(path, map_location="cpu", weights_only=True)
    rows = legacy["teacher_cls"]
    n = len(rows)
    gather = lambda idx: torch.stack([rows[i] for i in idx]).float()
open_s = time.perf_counter() - t0
rss_open = proc.memory_info().rss - rss0
rng = np.random.default_rng(0)
times = []
for _ in range(batches):
    idx = rng.integers(0, n, size=128)
    t = time.perf_counter()
    gather(idx)
    times.append(time.perf_counter() - t)
print(json.dumps({"open_ms": open_s * 1e3, "rss_after_open_mb": rss_open / 2**20,
                  "gather_ms_median": float(np.median(times)) * 1e3}))
"""


def write_files(rows: int, dim: int) -> tuple[str, str]:
    import numpy as np
    import torch

    from talas.cache.build import write_cache
    from talas.cache.format import FORMAT

    os.makedirs(OUT, exist_ok=True)
    ours, seed = os.path.join(OUT, f"scale_{rows}x{dim}.safetensors"), os.path.join(OUT, f"scale_{rows}x{dim}.pt")
    rng = np.random.default_rng(0)
    if not os.path.exists(ours) or not os.path.exists(seed):
        vectors = torch.from_numpy(rng.standard_normal((rows, dim), dtype=np.float32)).half()
        texts = [f"t{i}" for i in range(rows)]
        manifest = {"format": FORMAT, "dtype": "float16", "texts_sha256": "synthetic"}
        write_cache(ours, manifest, texts, vectors)
        # one storage per row, as the seed built its list (views of one tensor would save as one block)
        torch.save({"teacher_cls": [v.clone() for v in vectors], "metadata": {"num_samples": rows, "dtype": "float16"}}, seed)
    return ours, seed


def probe(kind: str, path: str, batches: int, timeout: float) -> dict | None:
    """One fresh-process measurement, or None when opening did not finish within ``timeout`` seconds."""
    try:
        out = subprocess.run([sys.executable, "-c", PROBE, kind, path, str(batches)], capture_output=True, text=True,
                             check=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=150, help="Give up on a format whose open takes longer (seconds).")
    args = parser.parse_args()
    ours, seed = write_files(args.rows, args.dim)
    for kind, path in (("talas", ours), ("seed .pt", seed)):
        runs = [probe("talas" if kind == "talas" else "seed", path, args.batches, args.timeout) for _ in range(args.repeats)]
        if None in runs:
            print(json.dumps({"format": kind, "rows": args.rows, "dim": args.dim, "file_mb": round(os.path.getsize(path) / 2**20),
                              "open": f"did not finish within {args.timeout:.0f} s"}))
            continue
        summary = {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]}
        print(json.dumps({"format": kind, "rows": args.rows, "dim": args.dim, "file_mb": round(os.path.getsize(path) / 2**20), **summary}))


if __name__ == "__main__":
    main()
