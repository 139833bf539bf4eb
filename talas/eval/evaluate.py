"""Score a sentence encoder on declared tasks: STS, pair classification, classification, retrieval.

    talas eval --model path/to/student --pooling mean --output_dir results/eval

    from talas.eval.evaluate import evaluate
    from talas.eval.task_file import load_tasks
    report = evaluate(lambda texts: model.encode(texts), load_tasks(None), split="validation")
    report["averages"]["overall"]

The core takes an ``encode(texts) -> [N, D]`` callable, so the training loop scores its in-memory
model with the same code as the CLI. Retrieval may encode queries and documents with two other
callables (``encode_query``, ``encode_document``): a student's queries against a teacher's corpus.
Every unique text of a run is encoded once per role (text, query, document). Nothing is tuned on
a test split: thresholds come from validation, classifiers are fit on train.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from talas.errors import ConfigError, ModelError
from talas.eval import metrics
from talas.eval.task_file import RetrievalData, SplitData, Task

# The score each task type is averaged on (as MTEB: Spearman, average precision, accuracy, nDCG@10).
MAIN_SCORE = {"sts": "spearman", "pair_classification": "ap", "classification": "accuracy", "retrieval": "ndcg_at_10"}
# Classifier training rows per task by default. The scored and threshold splits are ~0.7M tokens
# (MiniLM's tokenizer); all ~53k training rows would add ~1.1M more, 4000 per task add ~0.24M.
DEFAULT_MAX_TRAIN_SAMPLES = 4000
# Retrieved documents per query: enough for Recall@100, the deepest cut reported.
RETRIEVAL_DEPTH = 100

Encode = Callable[[list[str]], Any]  # texts -> np.ndarray or torch.Tensor of shape [N, D]


def plan_splits(task: Task, split: str) -> dict[str, str]:
    """Which split plays which role: 'report' is scored, 'tune' picks a threshold, 'train' fits a classifier."""
    if task.type in ("sts", "retrieval"):
        return {"report": split}
    if task.type == "pair_classification":
        return {"tune": "validation", "report": split}
    return {"train": "train", "report": split}


def subsample(data: SplitData, limit: int | None, seed: int) -> SplitData:
    """At most ``limit`` rows, chosen at random but reproducibly (the same rows for every model)."""
    count = len(data.targets)
    if not limit or count <= limit:
        return data
    return data.take(np.sort(np.random.default_rng(seed).choice(count, size=limit, replace=False)))


def without_texts_of(train: SplitData, report: SplitData) -> tuple[SplitData, int]:
    """``train`` minus the rows whose text is scored in ``report``, and how many were dropped.

    A classifier fit on the very texts it is then scored on reports memory, not the embedding
    (the bundled Banking77 validation file lies entirely inside its training file).
    """
    scored = set(report.texts[0])
    keep = np.array([i for i, text in enumerate(train.texts[0]) if text not in scored], dtype=np.int64)
    return train.take(keep), len(train.targets) - len(keep)


def encode_unique(encode: Encode, texts: list[str], chunk_size: int = 2048, progress: bool = True) -> np.ndarray:
    """Encode texts (already unique) longest first, in chunks, into one float32 matrix in input order."""
    from tqdm.auto import tqdm

    # Longest first: chunks hold texts of similar length (little padding) and the ETA starts pessimistic.
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    out: np.ndarray | None = None
    with tqdm(total=len(texts), desc="encoding", unit="text", disable=not progress) as bar:
        for start in range(0, len(order), chunk_size):
            rows = order[start : start + chunk_size]
            vectors = to_numpy(encode([texts[i] for i in rows]))
            if vectors.ndim != 2 or vectors.shape[0] != len(rows):
                raise ModelError(f"encode returned shape {tuple(vectors.shape)} for {len(rows)} texts; expected [{len(rows)}, dim].")
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            out[rows] = vectors
            bar.update(len(rows))
    if out is None:
        raise ConfigError("No texts to encode: the chosen tasks are empty.")
    if not np.isfinite(out).all():
        raise ModelError("The model produced NaN or infinite embeddings (float16 overflow?); try --dtype float32.")
    return out


def to_numpy(vectors: Any) -> np.ndarray:
    if hasattr(vectors, "detach"):  # a torch tensor, possibly bfloat16 on a GPU
        vectors = vectors.detach().float().cpu().numpy()
    return np.asarray(vectors, dtype=np.float32)


def evaluate(
    encode: Encode | None,
    tasks: Sequence[Task],
    split: str = "test",
    *,
    encode_query: Encode | None = None,
    encode_document: Encode | None = None,
    max_train_samples: int | None = DEFAULT_MAX_TRAIN_SAMPLES,
    seed: int = 0,
    logreg_solver: str = "lbfgs",
    logreg_C: float = 1.0,
    logreg_max_iter: int = 1000,
    progress: bool = True,
) -> dict[str, Any]:
    """Score ``encode`` on ``tasks``, reporting on ``split`` ("test" or "validation").

    With split="validation" STS scores validation, pair classification picks and reports its
    threshold on validation, classification fits on train and reports on validation; tasks
    without that split are listed under "skipped". Classifiers train on at most
    ``max_train_samples`` rows (a seeded subset, the same for every model; None: all), never on
    a row whose text is in the scored split. Retrieval encodes queries with ``encode_query`` and
    documents with ``encode_document`` (each defaults to ``encode``); with ``encode=None`` only
    retrieval tasks are scored, the others are listed as skipped.
    Returns {"split", "tasks": {name: scores}, "averages": {type: mean main score, "overall":
    mean over tasks}, "skipped", "n_texts", "encode_seconds", and per role ("text", "query",
    "document") "texts_by_role" and "seconds_by_role"}.
    """
    if split not in ("validation", "test"):
        raise ConfigError(f"split must be 'validation' or 'test', got {split!r}.")
    encoders = {"text": encode, "query": encode_query or encode, "document": encode_document or encode}
    if encoders["query"] is None or encoders["document"] is None:
        raise ConfigError("Pass encode, or both encode_query and encode_document.")
    plans, skipped = [], {}
    for task in tasks:
        if split not in task.files:
            skipped[task.name] = f"no {split} file declared"
            continue
        if encode is None and task.type != "retrieval":
            skipped[task.name] = "a query/corpus model pairing scores retrieval tasks only"
            continue
        roles = plan_splits(task, split)
        data = {role: task.read(s) for role, s in roles.items()}
        dropped = 0
        if "train" in data:
            data["train"], dropped = without_texts_of(data["train"], data["report"])
            data["train"] = subsample(data["train"], max_train_samples, seed)
        plans.append((task, roles, data, dropped))
    if not plans:
        reasons = "; ".join(f"{name}: {why}" for name, why in skipped.items())
        raise ConfigError(f"No task can be scored on {split} ({reasons}).")

    index: dict[str, dict[str, int]] = {role: {} for role in encoders}
    for _, _, data, _ in plans:
        for part in data.values():
            columns = [("query", part.queries), ("document", part.corpus)] if isinstance(part, RetrievalData) else \
                [("text", column) for column in part.texts]
            for role, texts in columns:
                for text in texts:
                    index[role].setdefault(text, len(index[role]))
    vectors, seconds = {}, {}
    for role, texts in index.items():
        if texts:
            start = time.perf_counter()
            vectors[role] = encode_unique(encoders[role], list(texts), progress=progress)
            seconds[role] = time.perf_counter() - start
    if "query" in vectors and vectors["query"].shape[1] != vectors["document"].shape[1]:
        raise ModelError(f"Query vectors are {vectors['query'].shape[1]}-d and document vectors {vectors['document'].shape[1]}-d: "
                         "retrieval compares them, so both encoders must embed into one space.")

    def embed(texts: list[str], role: str = "text") -> np.ndarray:
        return vectors[role][[index[role][t] for t in texts]]

    results = {}
    for task, roles, data, dropped in plans:
        report = data["report"]
        if task.type == "sts":
            scores = metrics.sts_scores(metrics.cosine_rows(*map(embed, report.texts)), report.targets)
        elif task.type == "pair_classification":
            tune = data["tune"]
            scores = metrics.pair_classification_scores(
                metrics.cosine_rows(*map(embed, tune.texts)), tune.targets,
                metrics.cosine_rows(*map(embed, report.texts)), report.targets,
            )
        elif task.type == "retrieval":
            ranked = metrics.exact_search(embed(report.queries, "query"), embed(report.corpus, "document"), RETRIEVAL_DEPTH)
            scores = {**metrics.retrieval_scores(ranked, report.relevance), "corpus_size": len(report.corpus),
                      "unjudged_queries": report.unjudged_queries}
        else:
            train = data["train"]
            scores = metrics.classification_scores(
                embed(train.texts[0]), train.targets, embed(report.texts[0]), report.targets,
                solver=logreg_solver, C=logreg_C, max_iter=logreg_max_iter, seed=seed,
            )
            scores["train_rows"] = len(train.targets)
            scores["train_rows_dropped"] = dropped  # training rows whose text is scored (held out)
        results[task.name] = {
            "type": task.type,
            "main_score": MAIN_SCORE[task.type],
            **{f"{role}_split": name for role, name in roles.items()},
            "rows": len(report.queries) if task.type == "retrieval" else len(report.targets),
            **scores,
        }
    return {
        "split": split,
        "tasks": results,
        "averages": averages(results),
        "skipped": skipped,
        "n_texts": sum(len(texts) for texts in index.values()),
        "encode_seconds": sum(seconds.values()),
        "texts_by_role": {role: len(texts) for role, texts in index.items() if texts},
        "seconds_by_role": seconds,
    }


def averages(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Mean main score per task type present, and "overall": the mean over all tasks."""
    by_type: dict[str, list[float]] = {}
    for scores in results.values():
        by_type.setdefault(scores["type"], []).append(scores[scores["main_score"]])
    out = {kind: float(np.mean(values)) for kind, values in by_type.items()}
    out["overall"] = float(np.mean([v for values in by_type.values() for v in values]))
    return out
