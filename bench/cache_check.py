"""Cost of the cache's integrity checks at scale: `python bench/cache_check.py [--rows 1000000] [--dim 1024]`.

Writes a synthetic N x D float16 cache (bench/out/check_<N>x<D>.safetensors, 1.9 GiB at the default
size) and measures, each in a fresh process, medians of --repeats runs:
- open: ``open_cache`` alone (header read + memmap);
- open check, warm: ``TeacherCache.open_check()`` (what every training run does on reuse) with the file
  in the page cache;
- open check, cold: the same after the file's pages are dropped (``posix_fadvise(DONTNEED)``), i.e.
  read from disk;
- verify: ``talas cache --verify`` on the file's folder (every chunk and the texts), warm.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "out")

PROBE = r"""
import json, os, sys, time
from talas.cache.format import open_cache
kind, path = sys.argv[1], sys.argv[2]
if kind == "cold":
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
t0 = time.perf_counter()
cache = open_cache(path)
opened = time.perf_counter() - t0
t1 = time.perf_counter()
bad, checked = cache.open_check() if kind in ("warm", "cold") else ([], 0)
print(json.dumps({"open_ms": opened * 1e3, "check_s": time.perf_counter() - t1, "checked": checked,
                  "chunks": cache.n_chunks, "bad": bad}))
"""


def write_file(rows: int, dim: int) -> str:
    import numpy as np
    import torch

    from talas.cache.build import write_cache
    from talas.cache.format import FORMAT

    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, f"check_{rows}x{dim}.safetensors")
    if not os.path.exists(path):
        rng = np.random.default_rng(0)
        vectors = torch.empty((rows, dim), dtype=torch.float16)
        for start in range(0, rows, 65536):  # in blocks: never a float32 copy of the whole array
            block = rng.standard_normal((min(65536, rows - start), dim), dtype=np.float32)
            vectors[start : start + len(block)] = torch.from_numpy(block)
        write_cache(path, {"format": FORMAT, "dtype": "float16", "texts_sha256": "synthetic"}, [f"t{i}" for i in range(rows)], vectors)
    return path


def probe(kind: str, path: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, kind, path], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def verify_seconds(path: str) -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "talas.cli", "cache", "--cache_path", path, "--verify"], check=True,
                   capture_output=True)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    path = write_file(args.rows, args.dim)
    probe("warm", path)  # fill the page cache once
    results = {}
    for kind in ("open", "warm", "cold"):
        runs = [probe(kind, path) for _ in range(args.repeats)]
        assert all(not r["bad"] for r in runs)
        results[kind] = {"open_ms": round(statistics.median(r["open_ms"] for r in runs), 1),
                         "check_s": round(statistics.median(r["check_s"] for r in runs), 3),
                         "checked_chunks": f"{runs[0]['checked']}/{runs[0]['chunks']}"}
    # The command as a user runs it, interpreter start-up and imports included.
    results["talas cache --verify (whole command)"] = {"s": round(statistics.median(verify_seconds(path) for _ in range(args.repeats)), 2)}
    print(json.dumps({"rows": args.rows, "dim": args.dim, "file_gib": round(os.path.getsize(path) / 2**30, 2), **results}))


if __name__ == "__main__":
    main()
