"""`talas eval`: score one or more models on the task suite, write JSON + Markdown (+ a bar chart).

    talas eval --model path/to/st_folder --output_dir results/eval
    talas eval --model student/ --model teacher/ --pooling mean --pooling last_token --output_dir results/cmp

A sentence-transformers folder (with modules.json) runs its own modules (pooling, Dense,
Normalize); any other transformers model path or hub id needs --pooling. Options given once
apply to every model; given once per --model, they pair up in order.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from importlib import metadata
from typing import Any

import numpy as np

from talas.encoders import POOLING_METHODS, Encoder, resolve_model_path
from talas.errors import ConfigError, ModelError, TalasError
from talas.evaluate import (
    BUNDLED_TASKS,
    DEFAULT_MAX_TRAIN_SAMPLES,
    MAIN_SCORE,
    TASK_TYPES,
    evaluate,
    load_tasks,
    plan_splits,
)

DTYPES = ("float32", "bfloat16", "float16")
# The metric columns of the per-model detail table, in this order.
DETAIL_METRICS = ("spearman", "pearson", "accuracy", "f1", "ap", "macro_f1", "threshold")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="talas eval", description="Score models on declared tasks (STS, pair classification, classification)."
    )
    p.add_argument("--model", action="append", required=True, help="model folder or hub id; repeat to compare models")
    p.add_argument("--name", action="append", help="label for each --model in tables (default: folder name)")
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


def per_model(values: list[str] | None, count: int, option: str) -> list[str | None]:
    """One value for each model: none given, one for all, or exactly one per --model."""
    if not values:
        return [None] * count
    if len(values) == 1:
        return values * count
    if len(values) != count:
        raise ConfigError(f"Give {option} once (for every model) or once per --model ({count}); got {len(values)}.")
    return list(values)


def load_encode(
    path: str, pooling: str | None, prompt: str | None, max_length: int | None, batch_size: int, device: str, dtype: str
) -> tuple[Callable[[list[str]], Any], dict[str, Any]]:
    """Load a model and return its ``encode(texts)`` and a description of how it encodes."""
    import torch

    torch_dtype = getattr(torch, dtype)
    if os.path.isfile(os.path.join(os.path.expanduser(path), "modules.json")):
        from sentence_transformers import SentenceTransformer

        try:
            model = SentenceTransformer(os.path.expanduser(path), device=device)
        except (OSError, ValueError) as exc:
            raise ModelError(f"Cannot load the sentence-transformers folder {path!r}: {exc}") from exc
        model.to(torch_dtype)
        if max_length:
            model.max_seq_length = max_length
        if pooling:
            print(f"note: --pooling ignored for {path}: its modules.json sets the pooling.", file=sys.stderr)
        # sentence-transformers 6 renamed get_sentence_embedding_dimension (5.x has only the old name).
        dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        info = {"kind": "sentence-transformers", "pooling": "modules.json", "max_length": model.max_seq_length, "dim": dimension()}

        def encode(texts: list[str]) -> np.ndarray:
            return model.encode(texts, batch_size=batch_size, prompt=prompt or None, show_progress_bar=False, convert_to_numpy=True)
    else:
        if not pooling:
            raise ConfigError(
                f"{path} is not a sentence-transformers folder (no modules.json): pass --pooling "
                f"({', '.join(POOLING_METHODS)}) to say how token states become a sentence vector."
            )
        encoder = Encoder.load(path, pooling, max_length or 256, prompt or "", dtype=torch_dtype).to(device)
        limit = position_limit(encoder)
        if max_length and max_length > limit:
            raise ConfigError(f"--max_length {max_length} exceeds what {path} can embed ({limit} tokens); pass at most {limit}.")
        encoder.max_length = min(encoder.max_length, limit)
        info = {"kind": "transformers", "pooling": pooling, "max_length": encoder.max_length, "dim": encoder.dim}

        def encode(texts: list[str]) -> np.ndarray:
            return encoder.encode(texts, batch_size=batch_size).numpy()
    return encode, {**info, "prompt": prompt or ""}


def check_model_path(path: str, pooling: str | None) -> None:
    """A missing folder says so (not "no modules.json: pass --pooling"), before anything loads."""
    resolve_model_path(path)  # "./x", "/x", "a/b/c": a path, and it does not exist
    if not os.path.isdir(os.path.expanduser(path)) and not pooling:
        raise ModelError(
            f"Model {path!r} is not a folder here ({os.getcwd()}): check the path. For a hub id of a plain "
            f"transformers model, pass --pooling ({', '.join(POOLING_METHODS)})."
        )


def position_limit(encoder: Encoder) -> int:
    """Longest input the model has position embeddings for (a longer batch crashes deep inside it)."""
    limits = [getattr(encoder.model.config, "max_position_embeddings", None), encoder.tokenizer.model_max_length]
    # Tokenizers without a limit report a huge sentinel (int(1e30)); rotary models have no table to overrun.
    return min((int(x) for x in limits if x and x < 1_000_000), default=1_000_000)


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("talas", "torch", "transformers", "sentence-transformers", "scikit-learn", "numpy", "scipy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def main_table(runs: list[dict[str, Any]]) -> list[str]:
    """Main score of every task and the averages, one column per model."""
    first = runs[0]["results"]
    lines = ["| task | type | metric | " + " | ".join(r["name"] for r in runs) + " |",
             "|---|---|---|" + "---:|" * len(runs)]
    for task, scores in first["tasks"].items():
        values = " | ".join(f"{r['results']['tasks'][task][scores['main_score']]:.2f}" for r in runs)
        lines.append(f"| {task} | {scores['type']} | {scores['main_score']} | {values} |")
    for kind in (*TASK_TYPES, "overall"):
        if kind in first["averages"]:
            metric = MAIN_SCORE.get(kind, "mean")
            values = " | ".join(f"**{r['results']['averages'][kind]:.2f}**" for r in runs)
            lines.append(f"| **{kind} average** | | {metric} | {values} |")
    return lines


def detail_table(run: dict[str, Any]) -> list[str]:
    lines = ["| task | rows | " + " | ".join(DETAIL_METRICS) + " |", "|---|---:|" + "---:|" * len(DETAIL_METRICS)]
    for task, scores in run["results"]["tasks"].items():
        cells = [f"{scores[m]:.{4 if m == 'threshold' else 2}f}" if m in scores else "" for m in DETAIL_METRICS]
        lines.append(f"| {task} | {scores['rows']} | " + " | ".join(cells) + " |")
    return lines


def markdown_report(runs: list[dict[str, Any]], split: str) -> str:
    lines = [f"# Evaluation ({split} split)", "", *main_table(runs), ""]
    for run in runs:
        skipped = run["results"]["skipped"]
        lines += [f"## {run['name']}", "",
                  f"`{run['model']}` ({run['kind']}, pooling {run['pooling']}, dim {run['dim']}); "
                  f"{run['results']['n_texts']} unique texts encoded in {run['results']['encode_seconds']:.1f} s.", "",
                  *detail_table(run), ""]
        lines += [f"- skipped {task}: {why}" for task, why in skipped.items()] + ([""] if skipped else [])
    return "\n".join(lines)


def bar_chart(runs: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed; set before pyplot is imported
    import matplotlib.pyplot as plt

    labels = [*runs[0]["results"]["tasks"], "overall"]
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(labels)), 4.0))
    for i, run in enumerate(runs):
        tasks = run["results"]["tasks"]
        values = [tasks[t][tasks[t]["main_score"]] for t in labels[:-1]] + [run["results"]["averages"]["overall"]]
        ax.bar(np.arange(len(labels)) + (i - (len(runs) - 1) / 2) * width, values, width, label=run["name"])
    ax.set_xticks(np.arange(len(labels)), labels, rotation=30, ha="right")
    ax.set_ylabel("main score (×100)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(args: argparse.Namespace, argv: list[str]) -> int:
    import torch

    started = time.perf_counter()
    count = len(args.model)
    names = per_model(args.name, count, "--name") if args.name else [os.path.basename(os.path.normpath(m)) for m in args.model]
    if len(set(names)) != count:
        raise ConfigError(f"Model names must differ to compare models ({', '.join(names)}); pass --name once per --model.")
    poolings = per_model(args.pooling, count, "--pooling")
    prompts = per_model(args.prompt, count, "--prompt")
    for path, pooling in zip(args.model, poolings, strict=True):
        check_model_path(path, pooling)
    for option, least in (("batch_size", 1), ("logreg_max_iter", 1), ("max_train_samples", 0)):
        if getattr(args, option) < least:
            raise ConfigError(f"--{option} must be at least {least}.")
    # Read and check every task file before loading any model: a typo fails in a second, not after encoding.
    tasks = load_tasks(args.tasks, args.task, args.data_dir)
    for task in tasks:
        if args.split in task.files:
            for split in plan_splits(task, args.split).values():
                task.read(split)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    runs = []
    for path, name, pooling, prompt in zip(args.model, names, poolings, prompts, strict=True):
        print(f"evaluating {name} ({path})", file=sys.stderr)
        loaded = time.perf_counter()
        encode, info = load_encode(path, pooling, prompt, args.max_length, args.batch_size, device, args.dtype)
        results = evaluate(
            encode, tasks, args.split, max_train_samples=args.max_train_samples or None, seed=args.seed,
            logreg_solver=args.logreg_solver, logreg_C=args.logreg_C, logreg_max_iter=args.logreg_max_iter,
            progress=not args.no_progress,
        )
        runs.append({"name": name, "model": path, **info, "seconds": time.perf_counter() - loaded, "results": results})
        for task, scores in results["tasks"].items():
            if scores.get("converged") is False:
                print(f"warning: {name} / {task}: logistic regression did not converge; raise --logreg_max_iter.", file=sys.stderr)

    os.makedirs(args.output_dir, exist_ok=True)
    report = markdown_report(runs, args.split)
    with open(os.path.join(args.output_dir, "eval_results.md"), "w", encoding="utf-8") as handle:
        handle.write(report)
    if count > 1:
        bar_chart(runs, os.path.join(args.output_dir, "comparison.png"))
    settings = {k: v for k, v in vars(args).items() if k not in ("model", "name", "pooling", "prompt", "debug", "no_progress")}
    output = {
        "command": ["talas", "eval", *argv],
        "settings": {**settings, "tasks": args.tasks or BUNDLED_TASKS, "device": device},
        "tasks": [task.metadata() for task in tasks],
        "models": runs,
        "versions": package_versions(),
        "wall_seconds": time.perf_counter() - started,
    }
    with open(os.path.join(args.output_dir, "eval_results.json"), "w", encoding="utf-8") as handle:
        json.dump(output, handle, indent=2)
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
