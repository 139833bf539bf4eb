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

from talas.cli.options import build_parser as build_options_parser
from talas.cli.options import parse
from talas.config import config_dict
from talas.errors import ConfigError, TalasError
from talas.eval.evaluate import plan_splits
from talas.eval.models import check_model_path
from talas.eval.options import EvalConfig
from talas.eval.report import main_table, package_versions, write_report, write_results
from talas.eval.runs import evaluate_model, evaluate_pair, plan_runs, query_speed
from talas.eval.task_file import BUNDLED_TASKS, load_tasks


def build_parser() -> argparse.ArgumentParser:
    return build_options_parser(EvalConfig, "talas eval", "Score models on declared tasks (STS, pair classification, "
                                "classification, retrieval). Options given once apply to every model; given once per "
                                "--model, they pair up in order.")


def run(args: EvalConfig, argv: list[str]) -> int:
    import torch

    started = time.perf_counter()
    specs = plan_runs(args)
    for spec in specs:
        for side in (spec.get("model"), spec.get("query"), spec.get("corpus")):
            if side:
                check_model_path(side["path"], side["pooling"])
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
               "corpus_pooling", "query_prompt", "corpus_prompt", "no_progress")
    settings = {k: v for k, v in config_dict(args).items() if k not in per_run}
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
    """`talas eval ARGV`: 0, or 2 after one line on stderr for an error the user can fix (--debug: the traceback)."""
    try:
        args, _ = parse(build_parser(), EvalConfig, argv, "talas eval")
        return run(args, argv)
    except TalasError as exc:
        if "--debug" in argv:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
