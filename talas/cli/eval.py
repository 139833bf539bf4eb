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

from talas.cli.options import build_parser as build_options_parser
from talas.cli.options import parse
from talas.config import config_dict
from talas.errors import ConfigError, ModelError, TalasError
from talas.eval.corpus import CachedCorpus, open_corpus_cache
from talas.eval.evaluate import (
    BUNDLED_TASKS,
    MAIN_SCORE,
    TASK_TYPES,
    Task,
    evaluate,
    load_tasks,
    plan_splits,
)
from talas.eval.options import EvalConfig
from talas.models.encoder import POOLING_METHODS, Encoder, resolve_model_path

# The metric columns of the per-model detail table, in this order (a table shows those its tasks have).
DETAIL_METRICS = ("spearman", "pearson", "accuracy", "f1", "ap", "macro_f1", "threshold",
                  "ndcg_at_10", "mrr_at_10", "recall_at_10", "recall_at_100")
ROLES = ("text", "query", "document")


def build_parser() -> argparse.ArgumentParser:
    return build_options_parser(EvalConfig, "talas eval", "Score models on declared tasks (STS, pair classification, "
                                "classification, retrieval). Options given once apply to every model; given once per "
                                "--model, they pair up in order.")


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
) -> tuple[dict[str, Callable[[list[str]], Any]], dict[str, Any]]:
    """Load a model; return its ``encode(texts)`` per role (text, query, document) and how it encodes.

    A sentence-transformers folder encodes queries with ``encode_query`` and documents with
    ``encode_document`` (its "query"/"document" prompts and Router routes); other models encode
    every role alike.
    """
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

        def with_role(method: Callable[..., Any]) -> Callable[[list[str]], np.ndarray]:
            def encode(texts: list[str]) -> np.ndarray:
                return method(texts, batch_size=batch_size, prompt=prompt or None, show_progress_bar=False, convert_to_numpy=True)
            return encode

        encoders = {"text": with_role(model.encode), "query": with_role(model.encode_query),
                    "document": with_role(model.encode_document)}
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

        encoders = dict.fromkeys(ROLES, encode)
    return encoders, {**info, "prompt": prompt or ""}


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


def scored_tasks(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every task some run scored, in order, with its scores from the first run that has it."""
    tasks: dict[str, dict[str, Any]] = {}
    for r in runs:
        for task, scores in r["results"]["tasks"].items():
            tasks.setdefault(task, scores)
    return tasks


def main_table(runs: list[dict[str, Any]]) -> list[str]:
    """Main score of every task and the averages, one column per model (blank where a run skipped the task).

    A run's overall mean is shown only when it scored every task of the table, so the row compares like with like.
    """
    tasks = scored_tasks(runs)
    lines = ["| task | type | metric | " + " | ".join(r["name"] for r in runs) + " |",
             "|---|---|---|" + "---:|" * len(runs)]
    for task, scores in tasks.items():
        values = " | ".join(f"{r['results']['tasks'][task][scores['main_score']]:.2f}" if task in r["results"]["tasks"] else ""
                            for r in runs)
        lines.append(f"| {task} | {scores['type']} | {scores['main_score']} | {values} |")
    for kind in (*TASK_TYPES, "overall"):
        if any(kind in r["results"]["averages"] for r in runs):
            metric = MAIN_SCORE.get(kind, "mean")
            values = " | ".join(
                f"**{r['results']['averages'][kind]:.2f}**"
                if kind in r["results"]["averages"] and (kind != "overall" or len(r["results"]["tasks"]) == len(tasks)) else ""
                for r in runs)
            lines.append(f"| **{kind} average** | | {metric} | {values} |")
    return lines


def detail_table(run: dict[str, Any]) -> list[str]:
    tasks = run["results"]["tasks"]
    shown = [m for m in DETAIL_METRICS if any(m in scores for scores in tasks.values())]
    lines = ["| task | rows | " + " | ".join(shown) + " |", "|---|---:|" + "---:|" * len(shown)]
    for task, scores in tasks.items():
        cells = [f"{scores[m]:.{4 if m == 'threshold' else 2}f}" if m in scores else "" for m in shown]
        lines.append(f"| {task} | {scores['rows']} | " + " | ".join(cells) + " |")
    return lines


def describe_model(info: dict[str, Any]) -> str:
    return f"`{info['model']}` ({info['kind']}, pooling {info['pooling']}, dim {info['dim']})"


def describe_run(run: dict[str, Any]) -> str:
    results = run["results"]
    if "query" in run:
        models = f"queries: {describe_model(run['query'])}; corpus: {describe_model(run['corpus'])}"
        cache = run.get("corpus_cache")
        if cache:
            models += f"; {cache['from_cache']} corpus vectors read from `{cache['path']}`, {cache['encoded']} encoded"
    else:
        models = describe_model(run)
    speed = f" Queries: {run['query_texts_per_s']:.1f} per second." if run.get("query_texts_per_s") else ""
    return f"{models}; {results['n_texts']} unique texts encoded in {results['encode_seconds']:.1f} s.{speed}"


def markdown_report(runs: list[dict[str, Any]], split: str) -> str:
    lines = [f"# Evaluation ({split} split)", "", *main_table(runs), ""]
    for run in runs:
        skipped = run["results"]["skipped"]
        lines += [f"## {run['name']}", "", describe_run(run), "", *detail_table(run), ""]
        lines += [f"- skipped {task}: {why}" for task, why in skipped.items()] + ([""] if skipped else [])
    return "\n".join(lines)


def bar_chart(runs: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed; set before pyplot is imported
    import matplotlib.pyplot as plt

    labels = [*scored_tasks(runs), "overall"]
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(labels)), 4.0))
    for i, run in enumerate(runs):
        tasks = run["results"]["tasks"]
        # A task the run skipped has no bar (NaN), nor has its overall mean unless it scored every task.
        values = [tasks[t][tasks[t]["main_score"]] if t in tasks else np.nan for t in labels[:-1]]
        values.append(run["results"]["averages"]["overall"] if len(tasks) == len(labels) - 1 else np.nan)
        ax.bar(np.arange(len(labels)) + (i - (len(runs) - 1) / 2) * width, values, width, label=run["name"])
    ax.set_xticks(np.arange(len(labels)), labels, rotation=30, ha="right")
    ax.set_ylabel("main score (×100)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def basename(path: str) -> str:
    return os.path.basename(os.path.normpath(path))


def plan_runs(args: EvalConfig) -> list[dict[str, Any]]:
    """The runs to make: one per --model, then one per --query_model/--corpus_model pair, each with its name."""
    models, queries, corpora = args.model or [], args.query_model or [], args.corpus_model or []
    if not models and not queries and not corpora:
        raise ConfigError("Pass --model (repeatable), or --query_model with --corpus_model for retrieval from another model's index.")
    if len(queries) != len(corpora):
        raise ConfigError(f"Give --query_model and --corpus_model the same number of times ({len(queries)} and {len(corpora)}): "
                          "they pair up in order.")
    if args.corpus_cache and not corpora:
        raise ConfigError("--corpus_cache needs --query_model and --corpus_model (the cache holds the corpus model's vectors).")
    count = len(models) + len(queries)
    names = per_model(args.name, count, "--name") if args.name else [basename(m) for m in models] + [
        f"{basename(q)} / {basename(c)}" for q, c in zip(queries, corpora, strict=True)]
    if len(set(names)) != count:
        raise ConfigError(f"Model names must differ to compare models ({', '.join(names)}); pass --name once per --model "
                          "and per query/corpus pairing.")
    runs = [{"name": name, "model": {"path": path, "pooling": pooling, "prompt": prompt}}
            for name, path, pooling, prompt in zip(names[: len(models)], models, per_model(args.pooling, len(models), "--pooling"),
                                                   per_model(args.prompt, len(models), "--prompt"), strict=True)]
    one = {"pooling": args.pooling[0] if args.pooling and len(args.pooling) == 1 else None,
           "prompt": args.prompt[0] if args.prompt and len(args.prompt) == 1 else None}  # --pooling/--prompt given once: for all
    sides = {
        "query": zip(queries, per_model(args.query_pooling, len(queries), "--query_pooling"),
                     per_model(args.query_prompt, len(queries), "--query_prompt"), strict=True),
        "corpus": zip(corpora, per_model(args.corpus_pooling, len(queries), "--corpus_pooling"),
                      per_model(args.corpus_prompt, len(queries), "--corpus_prompt"), strict=True),
    }
    pairs = [[{"path": path, "pooling": pooling or one["pooling"], "prompt": prompt or one["prompt"]} for path, pooling, prompt in side]
             for side in sides.values()]
    caches = per_model(args.corpus_cache, len(queries), "--corpus_cache")
    for name, query, corpus, cache in zip(names[len(models):], *pairs, caches, strict=True):
        runs.append({"name": name, "query": query, "corpus": {**corpus, "cache": cache}})
    return runs


def corpus_texts(tasks: list[Task], split: str) -> list[str]:
    """The corpus texts of every retrieval task with a ``split`` file (already read and checked)."""
    return [text for task in tasks if task.type == "retrieval" and split in task.files for text in task.read(split).corpus]


def load_side(side: dict[str, Any], args: EvalConfig, device: str, max_length: int | None = None):
    encoders, info = load_encode(side["path"], side["pooling"], side["prompt"], max_length or args.max_length,
                                 args.batch_size, device, args.dtype)
    return encoders, {"model": side["path"], **info}


def evaluate_pair(spec: dict[str, Any], tasks: list[Task], args: EvalConfig, device: str) -> dict[str, Any]:
    """Queries encoded by one model, the corpus by another (or read from its cache); refused unless both share a width."""
    query, corpus = spec["query"], spec["corpus"]
    cache = open_corpus_cache(corpus["cache"]) if corpus["cache"] else None
    if cache:
        # Encode what the cache lacks, and the spot check, as the cache was built.
        plain = not os.path.isfile(os.path.join(os.path.expanduser(corpus["path"]), "modules.json"))
        corpus = {**corpus, "pooling": corpus["pooling"] or (cache.manifest["pooling"] if plain else None),
                  "prompt": corpus["prompt"] if corpus["prompt"] is not None else cache.manifest["prompt"]}
    query_encoders, query_info = load_side(query, args, device)
    corpus_encoders, corpus_info = load_side(corpus, args, device, cache.manifest["max_length"] if cache else None)
    if query_info["dim"] != corpus_info["dim"]:
        raise ConfigError(
            f"--query_model {query['path']} embeds into {query_info['dim']} dimensions and --corpus_model {corpus['path']} "
            f"into {corpus_info['dim']}: queries can only be searched in another model's index when both embed into one "
            "space. Use a student distilled from that corpus model, exported with its projection into the teacher's "
            "width (TALAS does so by default: --export_projection true), or compare the models with --model instead."
        )
    encode_document = corpus_encoders["document"]
    if cache:
        encode_document = CachedCorpus(cache, corpus_encoders["document"], corpus_texts(tasks, args.split), corpus["path"])
    results = evaluate(
        None, tasks, args.split, encode_query=query_encoders["query"], encode_document=encode_document,
        seed=args.seed, progress=not args.no_progress,
    )
    out = {"query": query_info, "corpus": corpus_info, "dim": query_info["dim"], "results": results}
    if cache:
        out["corpus_cache"] = {"path": cache.path, "from_cache": encode_document.from_cache, "encoded": encode_document.encoded,
                               **{k: cache.manifest[k] for k in ("teacher", "teacher_revision", "pooling", "max_length", "prompt", "dtype")}}
    return out


def query_speed(results: dict[str, Any]) -> float | None:
    """Queries encoded per second (None without retrieval), the figure a query encoder is chosen by."""
    seconds = results["seconds_by_role"].get("query")
    return results["texts_by_role"]["query"] / seconds if seconds else None


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
            model = spec["model"]
            print(f"evaluating {spec['name']} ({model['path']})", file=sys.stderr)
            encoders, info = load_side(model, args, device)
            results = evaluate(
                encoders["text"], tasks, args.split, encode_query=encoders["query"], encode_document=encoders["document"],
                max_train_samples=args.max_train_samples or None, seed=args.seed, logreg_solver=args.logreg_solver,
                logreg_C=args.logreg_C, logreg_max_iter=args.logreg_max_iter, progress=not args.no_progress,
            )
            record = {"name": spec["name"], **info, "results": results}
        record["seconds"] = time.perf_counter() - loaded
        record["query_texts_per_s"] = query_speed(record["results"])
        runs.append(record)
        for task, scores in record["results"]["tasks"].items():
            if scores.get("converged") is False:
                print(f"warning: {spec['name']} / {task}: logistic regression did not converge; raise --logreg_max_iter.", file=sys.stderr)

    os.makedirs(args.output_dir, exist_ok=True)
    report = markdown_report(runs, args.split)
    with open(os.path.join(args.output_dir, "eval_results.md"), "w", encoding="utf-8") as handle:
        handle.write(report)
    if len(runs) > 1:
        bar_chart(runs, os.path.join(args.output_dir, "comparison.png"))
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
    with open(os.path.join(args.output_dir, "eval_results.json"), "w", encoding="utf-8") as handle:
        json.dump(output, handle, indent=2)
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
