"""One process of `talas compare` (talas/compare/plan.py starts it; each has its own memory):

    python -m talas.cli.worker cache --result R.json -- <talas train flags>
        build (or find) the teacher cache those flags read; R.json: seconds, teacher passes, peak RSS
    python -m talas.cli.worker train --result R.json --eval_task_file F --eval_tasks A,B -- <talas train flags>
        train, then score the exported student on the validation and test splits of the tasks;
        R.json: the resolved config, the run's run_summary.json, train and evaluation seconds, scores

R.json is written last and atomically: its presence means the work is done.
"""

from __future__ import annotations

import json
import os
import sys
import time

from talas.cli.cache import build
from talas.cli.console import console_logging
from talas.cli.flags import FlagParser
from talas.cli.train import resolve
from talas.config import config_dict
from talas.errors import TalasError


def build_cache(argv: list[str]) -> dict:
    from talas.models.teacher import pick_device
    from talas.train.meter import RunMeter, counting_encoder_forwards

    cfg = resolve(argv, "talas cache")
    meter = RunMeter(pick_device(cfg.device))
    began = time.perf_counter()
    with counting_encoder_forwards() as count:
        build(cfg)
    return {"seconds": round(time.perf_counter() - began, 3), "teacher_forwards": count.as_dict(),
            "peak_memory_mb": meter.peak_memory(), "cache_path": cfg.cache_path, "method": cfg.method}


def scores(model_dir: str, tasks: list, device: str) -> dict:
    """Main score of every task and the averages, on each split some task declares (validation, test)."""
    from talas.eval.evaluate import evaluate
    from talas.eval.models import load_encode

    encoders, _ = load_encode(model_dir, None, None, None, 64, device, "float32")
    found = {}
    for split in ("validation", "test"):
        if any(split in task.files for task in tasks):
            result = evaluate(encoders["text"], tasks, split, encode_query=encoders["query"],
                              encode_document=encoders["document"], progress=False)
            found[split] = {"tasks": {name: r[r["main_score"]] for name, r in result["tasks"].items()},
                            "averages": result["averages"], "skipped": result["skipped"]}
    return found


def train_and_score(argv: list[str], task_file: str, task_names: list[str]) -> dict:
    from talas.eval.task_file import load_tasks
    from talas.models.teacher import pick_device
    from talas.train.loop import train
    from talas.train.meter import SUMMARY_FILE

    tasks = load_tasks(task_file or None, task_names or None)  # a wrong task fails before training
    cfg = resolve(argv, "talas train")
    began = time.perf_counter()
    model_dir = train(cfg)
    trained = time.perf_counter()
    with open(os.path.join(cfg.save_dir, SUMMARY_FILE), encoding="utf-8") as handle:
        summary = json.load(handle)
    found = scores(model_dir, tasks, str(pick_device(cfg.device)))
    return {"method": cfg.method, "config": config_dict(cfg), "argv": argv, "summary": summary,
            "seconds": {"train": round(trained - began, 3), "evaluate": round(time.perf_counter() - trained, 3)},
            "scores": found, "evaluation": {"task_file": task_file, "tasks": [t.name for t in tasks]},
            "model": model_dir, "run_dir": cfg.save_dir, "pid": os.getpid(), "finished": time.strftime("%Y-%m-%d %H:%M:%S")}


def main(argv: list[str]) -> int:
    from talas.train.checkpoint import write_json

    parser = FlagParser(prog="python -m talas.cli.worker")
    parser.add_argument("mode", choices=("cache", "train"))
    parser.add_argument("--result", required=True)
    parser.add_argument("--eval_task_file", default="")
    parser.add_argument("--eval_tasks", default="")
    # The training flags follow "--" untouched (argparse would take --eval_tasks "" etc. as its own).
    cut = argv.index("--") if "--" in argv else len(argv)
    flags = argv[cut + 1 :]
    try:
        args = parser.parse_flags(argv[:cut])
        with console_logging():
            if args.mode == "cache":
                result = build_cache(flags)
            else:
                result = train_and_score(flags, args.eval_task_file, [t for t in args.eval_tasks.split(",") if t])
    except TalasError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    os.makedirs(os.path.dirname(os.path.abspath(args.result)), exist_ok=True)
    write_json(args.result, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
