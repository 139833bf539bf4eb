"""`talas eval`: score one or more models on the task suite, write JSON + Markdown (+ a bar chart).

    talas eval --model path/to/st_folder --output_dir results/eval
    talas eval --model student/ --model teacher/ --pooling mean --pooling last_token --output_dir results/cmp
    talas eval --query_model student/ --corpus_model teacher/ --task QNLI-retrieval   # student queries, teacher index

A sentence-transformers folder (with modules.json) runs its own modules (pooling, Dense,
Normalize; a Router sends queries and documents their own ways); any other transformers model
path or hub id needs --pooling. Options given once apply to every model; given once per --model,
they pair up in order. A --query_model / --corpus_model pairing scores retrieval tasks only; its
models must embed into one space (the same width), and --corpus_cache takes the corpus vectors
from a teacher cache (talas/eval/corpus.py).

The scoring, model loading and report live in talas/eval/; this module parses, runs them in
order and prints.
"""

from __future__ import annotations

import argparse
import sys
import time

from talas.errors import ConfigError, TalasError
from talas.eval.evaluate import DEFAULT_MAX_TRAIN_SAMPLES, plan_splits
from talas.eval.models import DTYPES, check_model_path
from talas.eval.report import main_table, package_versions, write_report, write_results
from talas.eval.runs import evaluate_model, evaluate_pair, plan_runs, query_speed
from talas.eval.task_file import BUNDLED_TASKS, load_tasks
from talas.models.encoder import POOLING_METHODS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="talas eval", description="Score models on declared tasks (STS, pair classification, classification)."
    )
    p.add_argument("--model", action="append", help="model folder or hub id; repeat to compare models")
    p.add_argument("--query_model", action="append",
                   help="encode retrieval queries with this model and the corpus with --corpus_model (repeat both to compare pairings)")
    p.add_argument("--corpus_model", action="append", help="encode the retrieval corpus with this model (see --query_model)")
    p.add_argument("--corpus_cache", action="append",
                   help="teacher cache file of the --corpus_model holding corpus texts: those vectors are read, not encoded")
    p.add_argument("--query_pooling", action="append", choices=POOLING_METHODS, help="pooling of a plain transformers --query_model")
    p.add_argument("--corpus_pooling", action="append", choices=POOLING_METHODS,
                   help="pooling of a plain transformers --corpus_model (default with --corpus_cache: the cache's)")
    p.add_argument("--query_prompt", action="append", help="text prepended to every query of a --query_model")
    p.add_argument("--corpus_prompt", action="append", help="text prepended to every document of a --corpus_model")
    p.add_argument("--name", action="append",
                   help="label for each --model, then each query/corpus pairing, in tables (default: folder names)")
    p.add_argument("--pooling", action="append", choices=POOLING_METHODS, help="pooling of a plain transformers model")
    p.add_argument("--prompt", action="append", help="text prepended to every input (e.g. an instruction)")
    p.add_argument("--max_length", type=int, help="max tokens per text (default: the ST folder's own, else 256)")
    p.add_argument("--tasks", default=None, help=f"YAML file of task declarations (default: {BUNDLED_TASKS})")
    p.add_argument("--task", action="append", help="evaluate only this task (repeatable)")
    p.add_argument("--data_dir", help="folder that relative data paths of the task file resolve against")
    p.add_argument("--split", default="test", choices=("test", "validation"), help="the split scores are reported on")
    p.add_argument("--output_dir", default="eval_results", help="where eval_results.json/.md (and comparison.png) go")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--max_train_samples", type=int, default=DEFAULT_MAX_TRAIN_SAMPLES,
                   help="cap on classifier training rows per task (seeded random subset; 0 = all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the training subset and the classifier")
    p.add_argument("--logreg_solver", default="lbfgs", choices=("lbfgs", "newton-cg", "newton-cholesky", "sag", "saga"),
                   help="scikit-learn LogisticRegression solver (multinomial ones)")
    p.add_argument("--logreg_C", type=float, default=1.0, help="inverse L2 strength of the classifier")
    p.add_argument("--logreg_max_iter", type=int, default=1000, help="classifier iterations (lbfgs)")
    p.add_argument("--device", help="cuda / cpu / mps (default: cuda when available)")
    p.add_argument("--dtype", default="float32", choices=DTYPES, help="model weights dtype (bfloat16 for big teachers on GPU)")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def run(args: argparse.Namespace, argv: list[str]) -> int:
    import torch

    started = time.perf_counter()
    specs = plan_runs(args)
    for spec in specs:
        for side in (spec.get("model"), spec.get("query"), spec.get("corpus")):
            if side:
                check_model_path(side["path"], side["pooling"])
    for option, least in (("batch_size", 1), ("logreg_max_iter", 1), ("max_train_samples", 0)):
        if getattr(args, option) < least:
            raise ConfigError(f"--{option} must be at least {least}.")
    # Read and check every task file before loading any model: a typo fails in a second, not after encoding.
    tasks = load_tasks(args.tasks, args.task, args.data_dir)
    for task in tasks:
        if args.split in task.files:
            for split in plan_splits(task, args.split).values():
                task.read(split)
    if any("query" in spec for spec in specs) and not any(t.type == "retrieval" and args.split in t.files for t in tasks):
        raise ConfigError(f"A --query_model/--corpus_model pairing scores retrieval tasks only, and none of the chosen tasks "
                          f"is one with a {args.split} split ({', '.join(t.name for t in tasks)}).")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    runs = []
    for spec in specs:
        loaded = time.perf_counter()
        if "query" in spec:
            print(f"evaluating {spec['name']} (queries: {spec['query']['path']}, corpus: {spec['corpus']['path']})", file=sys.stderr)
            record = {"name": spec["name"], **evaluate_pair(spec, tasks, args, device)}
        else:
            print(f"evaluating {spec['name']} ({spec['model']['path']})", file=sys.stderr)
            record = {"name": spec["name"], **evaluate_model(spec["model"], tasks, args, device)}
        record["seconds"] = time.perf_counter() - loaded
        record["query_texts_per_s"] = query_speed(record["results"])
        runs.append(record)
        for task, scores in record["results"]["tasks"].items():
            if scores.get("converged") is False:
                print(f"warning: {spec['name']} / {task}: logistic regression did not converge; raise --logreg_max_iter.", file=sys.stderr)

    write_report(args.output_dir, runs, args.split)
    per_run = ("model", "name", "pooling", "prompt", "query_model", "corpus_model", "corpus_cache", "query_pooling",
               "corpus_pooling", "query_prompt", "corpus_prompt", "debug", "no_progress")
    settings = {k: v for k, v in vars(args).items() if k not in per_run}
    output = {
        "command": ["talas", "eval", *argv],
        "settings": {**settings, "tasks": args.tasks or BUNDLED_TASKS, "device": device},
        "tasks": [task.metadata() for task in tasks],
        "models": runs,
        "versions": package_versions(),
        "wall_seconds": time.perf_counter() - started,
    }
    write_results(args.output_dir, output)
    print("\n".join(main_table(runs)))
    print(f"wrote {args.output_dir}/eval_results.json and .md ({output['wall_seconds']:.0f} s)", file=sys.stderr)
    return 0


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args, argv)
    except TalasError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
