"""Training-data load cost by format: `python bench/data_formats.py [--rows 1000000]`.

Writes one synthetic pair dataset (short anchor / positive texts, plus an unused `source` column of
longer text that the reader can leave alone) as .csv, .csv.gz, .parquet and a `datasets` save_to_disk
folder, then loads each with talas.data.examples.load_training_data in a fresh subprocess and reports
the load time and the peak resident memory it added (over the process after imports). Files go to
bench/out/data_formats/.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import random
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "out", "data_formats")
WORDS = ("a man woman dog cat plays runs sits on the mat field guitar onion market fell sharply card "
         "payment declined park children happy today plane taking off stage cut reset pin").split()

PROBE = r"""
import json, sys, time
from talas.data.examples import load_training_data
from talas.train.checkpoint import data_fingerprint
def peak():  # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent through fork and exec
    line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024
before = peak()
t0 = time.perf_counter()
data = load_training_data(sys.argv[1])
load_s = time.perf_counter() - t0
print(json.dumps({"rows": len(data), "load_s": load_s, "peak_added_mb": peak() - before,
                  "sha256": data_fingerprint(data)["sha256"][:12]}))
"""


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def write_all(rows: int) -> dict[str, str]:
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(0)
    columns = {
        "anchor": [sentence(rng, rng.randint(4, 12)) for _ in range(rows)],
        "positive": [sentence(rng, rng.randint(4, 12)) for _ in range(rows)],
        "source": [sentence(rng, 30) for _ in range(rows)],  # never read for training
    }
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    paths = {name: os.path.join(OUT, f"pairs.{name}") for name in ("csv", "csv.gz", "parquet")}
    for name in ("csv", "csv.gz"):
        with (gzip.open if name.endswith(".gz") else open)(paths[name], "wt", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            writer.writerows(zip(*columns.values(), strict=True))
    table = pa.table(columns)
    pq.write_table(table, paths["parquet"])
    paths["save_to_disk"] = os.path.join(OUT, "pairs_dataset")
    datasets.Dataset(table).save_to_disk(paths["save_to_disk"])
    return paths


def measure(path: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.path.dirname(HERE)}
    result = subprocess.run([sys.executable, "-c", PROBE, path], capture_output=True, text=True, env=env, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    paths = write_all(args.rows)
    print("| format | file size | load time | peak RSS added | data fingerprint |")
    print("|---|---|---|---|---|")
    for name, path in paths.items():
        size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs) if os.path.isdir(path) else os.path.getsize(path)
        got = measure(path)
        assert got["rows"] == args.rows
        print(f"| {name} | {size / 2**20:.0f} MB | {got['load_s']:.2f} s | {got['peak_added_mb']:.0f} MB | {got['sha256']} |")


if __name__ == "__main__":
    main()
