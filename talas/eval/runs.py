"""The runs of `talas eval`: one per --model, one per --query_model/--corpus_model pairing, each scored.

The functions take ``options``, any object with the attributes of `talas eval`'s options
(``model``, ``query_model``, ``corpus_model``, ``corpus_cache``, ``name``, ``pooling``, ``prompt``,
``query_pooling``, ``corpus_pooling``, ``query_prompt``, ``corpus_prompt``, ``max_length``,
``batch_size``, ``dtype``, ``split``, ``seed``, ``max_train_samples``, ``logreg_solver``,
``logreg_C``, ``logreg_max_iter``, ``no_progress``), so the library never sees the parser.
"""

from __future__ import annotations

import os
from typing import Any

from talas.errors import ConfigError
from talas.eval.corpus import CachedCorpus, open_corpus_cache
from talas.eval.evaluate import evaluate
from talas.eval.models import load_encode
from talas.eval.task_file import Task


def per_model(values: list[str] | None, count: int, option: str) -> list[str | None]:
    """One value for each model: none given, one for all, or exactly one per --model."""
    if not values:
        return [None] * count
    if len(values) == 1:
        return values * count
    if len(values) != count:
        raise ConfigError(f"Give {option} once (for every model) or once per --model ({count}); got {len(values)}.")
    return list(values)


def basename(path: str) -> str:
    return os.path.basename(os.path.normpath(path))


def plan_runs(options) -> list[dict[str, Any]]:
    """The runs to make: one per --model, then one per --query_model/--corpus_model pair, each with its name."""
    models, queries, corpora = options.model or [], options.query_model or [], options.corpus_model or []
    if not models and not queries and not corpora:
        raise ConfigError("Pass --model (repeatable), or --query_model with --corpus_model for retrieval from another model's index.")
    if len(queries) != len(corpora):
        raise ConfigError(f"Give --query_model and --corpus_model the same number of times ({len(queries)} and {len(corpora)}): "
                          "they pair up in order.")
    if options.corpus_cache and not corpora:
        raise ConfigError("--corpus_cache needs --query_model and --corpus_model (the cache holds the corpus model's vectors).")
    count = len(models) + len(queries)
    names = per_model(options.name, count, "--name") if options.name else [basename(m) for m in models] + [
        f"{basename(q)} / {basename(c)}" for q, c in zip(queries, corpora, strict=True)]
    if len(set(names)) != count:
        raise ConfigError(f"Model names must differ to compare models ({', '.join(names)}); pass --name once per --model "
                          "and per query/corpus pairing.")
    runs = [{"name": name, "model": {"path": path, "pooling": pooling, "prompt": prompt}}
            for name, path, pooling, prompt in zip(names[: len(models)], models, per_model(options.pooling, len(models), "--pooling"),
                                                   per_model(options.prompt, len(models), "--prompt"), strict=True)]
    one = {"pooling": options.pooling[0] if options.pooling and len(options.pooling) == 1 else None,
           "prompt": options.prompt[0] if options.prompt and len(options.prompt) == 1 else None}  # --pooling/--prompt given once: for all
    sides = {
        "query": zip(queries, per_model(options.query_pooling, len(queries), "--query_pooling"),
                     per_model(options.query_prompt, len(queries), "--query_prompt"), strict=True),
        "corpus": zip(corpora, per_model(options.corpus_pooling, len(queries), "--corpus_pooling"),
                      per_model(options.corpus_prompt, len(queries), "--corpus_prompt"), strict=True),
    }
    pairs = [[{"path": path, "pooling": pooling or one["pooling"], "prompt": prompt or one["prompt"]} for path, pooling, prompt in side]
             for side in sides.values()]
    caches = per_model(options.corpus_cache, len(queries), "--corpus_cache")
    for name, query, corpus, cache in zip(names[len(models):], *pairs, caches, strict=True):
        runs.append({"name": name, "query": query, "corpus": {**corpus, "cache": cache}})
    return runs


def corpus_texts(tasks: list[Task], split: str) -> list[str]:
    """The corpus texts of every retrieval task with a ``split`` file (already read and checked)."""
    return [text for task in tasks if task.type == "retrieval" and split in task.files for text in task.read(split).corpus]


def load_side(side: dict[str, Any], options, device: str, max_length: int | None = None):
    encoders, info = load_encode(side["path"], side["pooling"], side["prompt"], max_length or options.max_length,
                                 options.batch_size, device, options.dtype)
    return encoders, {"model": side["path"], **info}


def evaluate_model(model: dict[str, Any], tasks: list[Task], options, device: str) -> dict[str, Any]:
    """One model encodes every role; its description and the scores."""
    encoders, info = load_side(model, options, device)
    results = evaluate(
        encoders["text"], tasks, options.split, encode_query=encoders["query"], encode_document=encoders["document"],
        max_train_samples=options.max_train_samples or None, seed=options.seed, logreg_solver=options.logreg_solver,
        logreg_C=options.logreg_C, logreg_max_iter=options.logreg_max_iter, progress=not options.no_progress,
    )
    return {**info, "results": results}


def evaluate_pair(spec: dict[str, Any], tasks: list[Task], options, device: str) -> dict[str, Any]:
    """Queries encoded by one model, the corpus by another (or read from its cache); refused unless both share a width."""
    query, corpus = spec["query"], spec["corpus"]
    cache = open_corpus_cache(corpus["cache"]) if corpus["cache"] else None
    if cache:
        # Encode what the cache lacks, and the spot check, as the cache was built.
        plain = not os.path.isfile(os.path.join(os.path.expanduser(corpus["path"]), "modules.json"))
        corpus = {**corpus, "pooling": corpus["pooling"] or (cache.manifest["pooling"] if plain else None),
                  "prompt": corpus["prompt"] if corpus["prompt"] is not None else cache.manifest["prompt"]}
    query_encoders, query_info = load_side(query, options, device)
    corpus_encoders, corpus_info = load_side(corpus, options, device, cache.manifest["max_length"] if cache else None)
    if query_info["dim"] != corpus_info["dim"]:
        raise ConfigError(
            f"--query_model {query['path']} embeds into {query_info['dim']} dimensions and --corpus_model {corpus['path']} "
            f"into {corpus_info['dim']}: queries can only be searched in another model's index when both embed into one "
            "space. Use a student distilled from that corpus model, exported with its projection into the teacher's "
            "width (TALAS does so by default: --export_projection true), or compare the models with --model instead."
        )
    encode_document = corpus_encoders["document"]
    if cache:
        encode_document = CachedCorpus(cache, corpus_encoders["document"], corpus_texts(tasks, options.split), corpus["path"])
    results = evaluate(
        None, tasks, options.split, encode_query=query_encoders["query"], encode_document=encode_document,
        seed=options.seed, progress=not options.no_progress,
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
