"""Run distillation settings side by side and score them: `python bench/tune.py NAME=FLAGS ...`

    python bench/tune.py "kd_only=--w_task 0 --w_kd 1" "seed=--w_task 0.5 --w_kd 0.5"
    python bench/tune.py --fresh_cache "talas=..."   # build the teacher cache inside the timed run
    python bench/tune.py --teacher mpnet "dskd=--method dskd --learning_rate 2e-4 --max_steps 150"

Each run distils all-MiniLM-L6-v2 (or --teacher mpnet: all-mpnet-base-v2) into all-MiniLM-L6-v2's
first 2 layers on the bundled training texts with any method (`--method` in the flags; TALAS by
default), scores STS-B and SICK-R on **validation** (what we select on) and on test (what we
report), and appends a JSON line to bench/out/tune.jsonl with wall time, peak RSS and the number
of teacher forward passes made during the run (counted by a hook on the teacher's model class,
cache build included). A folder with a head after pooling (TALAS's exported projection, Stella's
FC) is also scored without it ("without_head"). Never select settings by the test columns.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shlex
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import ROOT, TRAIN_TEXTS, Timer, minilm_path, mpnet_path, peak_rss_mb, sts_scores  # noqa: E402


def base_flags(teacher: str, student: str, out: str) -> list[str]:
    return [
        "--method", "talas", "--train_data_path", TRAIN_TEXTS, "--teacher_model_name", teacher,
        "--student_model_name", student, "--student_num_layers", "2", "--pooling_method", "mean",
        "--student_pooling", "mean", "--max_length", "128", "--epochs", "1", "--save_dir", out,
        "--log_steps", "50",
    ]


class ForwardCounter:
    """Counts forward calls (and texts) of every module of one class: the teacher's, by its class name.

    The student of these runs is a BertModel, the teachers MPNetModel or (minilm) BertModel too, so
    for --teacher minilm the count includes the student's forwards and is not reported.
    """

    def __init__(self, class_name: str):
        import torch

        self.class_name, self.calls, self.texts = class_name, 0, 0
        # with_kwargs: the teacher is called as model(input_ids=..., attention_mask=...), so the batch
        # is in the keyword arguments (positional-only, "texts" stayed 0 for every online run).
        self.handle = torch.nn.modules.module.register_module_forward_hook(self.hook, with_kwargs=True)

    def hook(self, module, args, kwargs, output) -> None:
        if type(module).__name__ == self.class_name:
            self.calls += 1
            ids = kwargs.get("input_ids", args[0] if args else None)
            self.texts += int(ids.shape[0]) if ids is not None and hasattr(ids, "shape") else 0


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="+", help="NAME=FLAGS (flags added to the base ones, later flags win)")
    parser.add_argument("--fresh_cache", action="store_true",
                        help="Build each run's own teacher cache inside the timed part (wall time = cache + train).")
    parser.add_argument("--teacher", choices=("minilm", "mpnet"), default="minilm",
                        help="Teacher: all-MiniLM-L6-v2 (the student's own full model) or all-mpnet-base-v2 (768-d).")
    args = parser.parse_args(argv)
    from sentence_transformers import SentenceTransformer

    from talas.cli.train import resolve
    from talas.train.loop import train

    student = minilm_path()
    teacher, cache_name = (student, "cache_minilm_l6") if args.teacher == "minilm" else (mpnet_path(), "cache_mpnet")
    shared_cache = os.path.join(ROOT, "bench", "out", f"{cache_name}.safetensors")
    os.makedirs(os.path.join(ROOT, "bench", "out"), exist_ok=True)
    for spec in args.specs:
        name, _, flags = spec.partition("=")
        out = os.path.join(ROOT, "bench", "out", "tune", name)
        shutil.rmtree(out, ignore_errors=True)  # every run starts fresh (no stale checkpoints to resume)
        argv_run = base_flags(teacher, student, out) + shlex.split(flags)
        cfg = resolve(argv_run, "talas train")
        if hasattr(cfg, "cache_path"):
            cfg.cache_path = os.path.join(out, "teacher_cache.safetensors") if args.fresh_cache else shared_cache
        counter = ForwardCounter("MPNetModel") if args.teacher == "mpnet" else None
        with Timer() as timer:
            model_dir = train(cfg)
        if counter is not None:
            counter.handle.remove()
        # Score what was exported (its own pooling and any Dense head), as a user would load it.
        trained = SentenceTransformer(model_dir, device="cpu")
        encode = functools.partial(trained.encode, batch_size=64)
        record = {"name": name, "teacher": args.teacher, "method": cfg.method, "flags": flags,
                  "fresh_cache": args.fresh_cache, "train_s": round(timer.seconds, 1), "peak_rss_mb": round(peak_rss_mb()),
                  "teacher_forwards": None if counter is None else {"calls": counter.calls, "texts": counter.texts},
                  "validation": sts_scores(encode, "validation"), "test": sts_scores(encode, "test")}
        if len(trained) > 2:  # a head after pooling (TALAS's projection, Stella's FC): also score without it
            bare = SentenceTransformer(modules=[trained[0], trained[1]], device="cpu")
            bare_encode = functools.partial(bare.encode, batch_size=64)
            record["without_head"] = {"validation": sts_scores(bare_encode, "validation"), "test": sts_scores(bare_encode, "test")}
        print(json.dumps(record), flush=True)
        with open(os.path.join(ROOT, "bench", "out", "tune.jsonl"), "a") as handle:
            handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
