"""Score a sentence encoder on tasks declared in a YAML file: STS, pair classification, classification, retrieval.

    talas eval --model path/to/student --pooling mean --output_dir results/eval

    from talas.eval.evaluate import evaluate, load_tasks
    tasks = load_tasks(None)                                  # the bundled suite (talas/tasks/bundled.yaml)
    report = evaluate(lambda texts: model.encode(texts), tasks, split="validation")
    report["averages"]["overall"]

The core takes an ``encode(texts) -> [N, D]`` callable, so the training loop scores its in-memory
model with the same code as the CLI. Retrieval may encode queries and documents with two other
callables (``encode_query``, ``encode_document``): a student's queries against a teacher's corpus.
Every unique text of a run is encoded once per role (text, query, document). Nothing is tuned on
a test split: thresholds come from validation, classifiers are fit on train.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from talas.eval import metrics
from talas.errors import ConfigError, DataError, ModelError
from talas.data.tables import read_table

BUNDLED_TASKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tasks", "bundled.yaml")
TASK_TYPES = ("sts", "pair_classification", "classification", "retrieval")
SPLITS = ("train", "validation", "test")
# The score each task type is averaged on (as MTEB: Spearman, average precision, accuracy, nDCG@10).
MAIN_SCORE = {"sts": "spearman", "pair_classification": "ap", "classification": "accuracy", "retrieval": "ndcg_at_10"}
# Classifier training rows per task by default. The scored and threshold splits are ~0.7M tokens
# (MiniLM's tokenizer); all ~53k training rows would add ~1.1M more, 4000 per task add ~0.24M.
DEFAULT_MAX_TRAIN_SAMPLES = 4000
# Keys a task may declare: those every type needs, and those of each type (required, optional).
COMMON_KEYS = {"name", "type", "files", "text_columns", "description"}
TYPE_KEYS = {
    "sts": ({"score_column"}, {"score_range"}),
    "pair_classification": ({"label_column", "positive_label"}, set()),
    "classification": ({"label_column"}, set()),
    "retrieval": (set(), {"id_column", "text_column", "qrels_columns"}),
}
TEXT_COLUMN_COUNT = {"sts": 2, "pair_classification": 2, "classification": 1}  # retrieval names its columns otherwise
# The split a type cannot do without: thresholds are tuned on validation, classifiers fit on train.
REQUIRED_SPLIT = {"sts": None, "pair_classification": "validation", "classification": "train", "retrieval": None}
# A retrieval split is three files: the queries, the corpus, and the relevance judgements (qrels).
RETRIEVAL_FILES = ("queries", "corpus", "qrels")
# Retrieved documents per query: enough for Recall@100, the deepest cut reported.
RETRIEVAL_DEPTH = 100

Encode = Callable[[list[str]], Any]  # texts -> np.ndarray or torch.Tensor of shape [N, D]


@dataclass
class SplitData:
    """One split of a task: one list of texts per text column, and one target per row."""

    texts: list[list[str]]
    targets: np.ndarray  # float scores (sts), bool positive (pair_classification), label strings (classification)

    def take(self, rows: np.ndarray) -> SplitData:
        return SplitData([[column[i] for i in rows] for column in self.texts], self.targets[rows])


@dataclass
class RetrievalData:
    """One split of a retrieval task: the judged queries, the whole corpus, and who is relevant to whom."""

    queries: list[str]  # the queries with at least one relevant document, in file order
    corpus: list[str]  # every document, in file order
    relevance: list[dict[int, int]]  # per query: corpus row -> grade (>= 1; unlisted rows are not relevant)
    unjudged_queries: int  # queries of the file without a relevant document: not scored (as trec_eval)


@dataclass
class Task:
    name: str
    type: str
    files: dict[str, Any]  # split name -> resolved path (retrieval: -> {"queries", "corpus", "qrels"} -> path)
    text_columns: list[str]
    score_column: str | None = None
    score_range: tuple[float, float] | None = None
    label_column: str | None = None
    positive_label: str | None = None
    id_column: str = "id"  # retrieval: the id and text columns of the queries and corpus files
    text_column: str = "text"
    qrels_columns: tuple[str, str, str] = ("query_id", "doc_id", "relevance")
    description: str = ""
    source: str = ""  # the YAML file that declared it, for error messages
    loaded: dict[str, SplitData] = field(default_factory=dict, repr=False, compare=False)

    def metadata(self) -> dict[str, Any]:
        keys = ("name", "type", "files", "text_columns", "score_column", "score_range", "label_column", "positive_label", "description")
        if self.type == "retrieval":
            keys = ("name", "type", "files", "id_column", "text_column", "qrels_columns", "description")
        return {k: getattr(self, k) for k in keys if getattr(self, k) not in (None, "", [])}

    def paths(self) -> list[tuple[str, str]]:
        """(split, path) of every file the task declares."""
        return [(split, path) for split, entry in self.files.items()
                for path in (entry.values() if isinstance(entry, dict) else [entry])]

    def read(self, split: str) -> SplitData:
        """Read and check one split (memoised: the training loop evaluates many times)."""
        if split not in self.loaded:
            self.loaded[split] = self.parse(split)
        return self.loaded[split]

    def parse(self, split: str) -> SplitData | RetrievalData:
        if self.type == "retrieval":
            return self.parse_retrieval(split)
        table = read_table(self.files[split])
        target_column = self.score_column if self.type == "sts" else self.label_column
        table.require(*self.text_columns, target_column)
        texts = [[row[c] for row in table.rows] for c in self.text_columns]
        raw = [row[target_column] for row in table.rows]
        where = f"task {self.name!r}, {table.path}"
        for value, line in zip(raw, table.line_numbers, strict=True):
            if not value.strip():
                raise DataError(f"{where}: line {line} has an empty {target_column!r} value; every row needs one.")
        if self.type == "sts":
            return SplitData(texts, self.parse_scores(raw, table.line_numbers, where))
        if self.type == "classification":
            if split == "train" and len(set(raw)) < 2:
                raise DataError(f"{where}: column {self.label_column!r} has a single label; a classifier needs two or more.")
            return SplitData(texts, np.array(raw, dtype=object))
        found = sorted(set(raw))
        if self.positive_label not in found or len(found) > 2:
            raise DataError(
                f"{where}: pair classification needs two labels including positive_label {self.positive_label!r}; "
                f"column {self.label_column!r} holds {', '.join(map(repr, found[:10]))}. Fix positive_label or label_column in {self.source}."
            )
        return SplitData(texts, np.array([v == self.positive_label for v in raw]))

    def parse_retrieval(self, split: str) -> RetrievalData:
        files = self.files[split]
        query_ids, queries = self.read_texts(files["queries"], "query")
        doc_ids, corpus = self.read_texts(files["corpus"], "document")
        doc_row = {doc_id: row for row, doc_id in enumerate(doc_ids)}
        grades: dict[str, dict[int, int]] = {}
        table = read_table(files["qrels"])
        query_column, doc_column, grade_column = self.qrels_columns
        table.require(*self.qrels_columns)
        where = f"task {self.name!r}, {table.path}"
        known_queries, judged = set(query_ids), set()
        for row, line in zip(table.rows, table.line_numbers, strict=True):
            query, doc, value = row[query_column], row[doc_column], row[grade_column].strip()
            if query not in known_queries:
                raise DataError(f"{where}: line {line}: query id {query!r} is not in {files['queries']}.")
            if doc not in doc_row:
                raise DataError(f"{where}: line {line}: document id {doc!r} is not in {files['corpus']}.")
            if not value.isdigit():
                raise DataError(f"{where}: line {line}: relevance {value!r} in column {grade_column!r} is not a whole number >= 0.")
            if (query, doc) in judged:
                raise DataError(f"{where}: line {line}: query {query!r} and document {doc!r} are judged twice.")
            judged.add((query, doc))
            if int(value) > 0:  # a 0 says "judged, not relevant": the same as unjudged for these metrics
                grades.setdefault(query, {})[doc_row[doc]] = int(value)
        scored = [i for i, query in enumerate(query_ids) if query in grades]
        if not scored:
            raise DataError(f"{where}: no query has a relevant document (relevance >= 1); nothing can be scored.")
        return RetrievalData([queries[i] for i in scored], corpus, [grades[query_ids[i]] for i in scored],
                             len(query_ids) - len(scored))

    def read_texts(self, path: str, what: str) -> tuple[list[str], list[str]]:
        """(ids, texts) of a queries or corpus file; ids unique, texts non-empty."""
        table = read_table(path)
        table.require(self.id_column, self.text_column)
        where = f"task {self.name!r}, {table.path}"
        ids, texts, seen = [], [], set()
        for row, line in zip(table.rows, table.line_numbers, strict=True):
            key, text = row[self.id_column], row[self.text_column]
            if key in seen:
                raise DataError(f"{where}: line {line}: {what} id {key!r} appears twice; ids must be unique.")
            if not text.strip():
                raise DataError(f"{where}: line {line}: {what} {key!r} has an empty {self.text_column!r}.")
            seen.add(key)
            ids.append(key)
            texts.append(text)
        return ids, texts

    def parse_scores(self, raw: list[str], lines: list[int], where: str) -> np.ndarray:
        scores = np.empty(len(raw))
        for i, (value, line) in enumerate(zip(raw, lines, strict=True)):
            try:
                scores[i] = float(value)
            except ValueError:
                raise DataError(f"{where}: line {line}: score {value!r} in column {self.score_column!r} is not a number.") from None
            if self.score_range and not self.score_range[0] <= scores[i] <= self.score_range[1]:
                raise DataError(
                    f"{where}: line {line}: score {value} is outside the declared score_range {list(self.score_range)}; "
                    f"check score_column / score_range in {self.source}."
                )
        return scores


def load_tasks(path: str | None = None, names: Sequence[str] | None = None, data_dir: str | None = None) -> list[Task]:
    """Read task declarations (``None``: the bundled suite), optionally only the tasks named.

    Relative file paths resolve against ``data_dir`` when given, else against the file's own
    ``data_dir`` key (itself relative to the YAML file's folder), else the YAML file's folder.
    """
    import yaml

    path = path or BUNDLED_TASKS
    if not os.path.isfile(path):
        raise ConfigError(f"Task file {path!r} does not exist. Pass --tasks with a YAML file of task declarations.")
    try:
        with open(path, encoding="utf-8") as handle:
            doc = yaml.safe_load(handle)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}).") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("tasks"), list) or not doc["tasks"]:
        raise ConfigError(f"{path}: expected a mapping with a non-empty 'tasks' list (see docs/evaluation.md).")
    folder = os.path.dirname(os.path.abspath(path))
    base = data_dir or os.path.join(folder, str(doc.get("data_dir", ".")))
    tasks = [parse_task(entry, path, base) for entry in doc["tasks"]]
    by_name = {t.name: t for t in tasks}
    if len(by_name) != len(tasks):
        raise ConfigError(f"{path}: task names must be unique.")
    unknown = [n for n in names or () if n not in by_name]
    if unknown:
        raise ConfigError(f"Unknown task(s) {', '.join(map(repr, unknown))} in {path}; tasks declared: {', '.join(by_name)}.")
    chosen = [by_name[n] for n in names] if names else tasks
    for task in chosen:
        for split, file in task.paths():
            if not os.path.isfile(file):
                raise DataError(
                    f"Task {task.name!r} ({split}): file {file!r} does not exist. Pass --data_dir with the folder holding "
                    f"the evaluation files (data/eval in a TALAS checkout), or fix 'files' in {path}."
                )
    return chosen


def parse_task(entry: Any, source: str, base: str) -> Task:
    if not isinstance(entry, dict) or "name" not in entry:
        raise ConfigError(f"{source}: every entry of 'tasks' must be a mapping with a 'name'; got {entry!r}.")
    where = f"{source}: task {entry['name']!r}"
    kind = entry.get("type")
    if kind not in TASK_TYPES:
        raise ConfigError(f"{where}: type {kind!r} is not one of {', '.join(TASK_TYPES)}.")
    required, optional = TYPE_KEYS[kind]
    common = COMMON_KEYS - {"text_columns"} if kind == "retrieval" else COMMON_KEYS
    missing = sorted((required | common - {"description"}) - entry.keys())
    unknown = sorted(entry.keys() - required - optional - common)
    if missing or unknown:
        problem = f"missing {', '.join(missing)}" if missing else f"unknown key(s) {', '.join(unknown)}"
        raise ConfigError(f"{where}: {problem}; a {kind} task takes {', '.join(sorted(required | optional | common))}.")
    files = entry["files"]
    if not isinstance(files, dict) or not files or not set(files) <= set(SPLITS):
        raise ConfigError(f"{where}: 'files' must map split names ({', '.join(SPLITS)}) to paths; got {files!r}.")
    if REQUIRED_SPLIT[kind] and REQUIRED_SPLIT[kind] not in files:
        raise ConfigError(f"{where}: a {kind} task needs a {REQUIRED_SPLIT[kind]} file (nothing is tuned on test).")
    if kind == "retrieval":
        return parse_retrieval_task(entry, where, source, base)
    columns = entry["text_columns"]
    if not isinstance(columns, list) or len(columns) != TEXT_COLUMN_COUNT[kind]:
        raise ConfigError(f"{where}: text_columns must list {TEXT_COLUMN_COUNT[kind]} column name(s) for a {kind} task; got {columns!r}.")
    if isinstance(entry.get("positive_label"), bool):
        raise ConfigError(f"{where}: YAML reads positive_label {entry['positive_label']} as a boolean; quote the value as written in the file.")
    score_range = entry.get("score_range")
    if score_range is not None and not (isinstance(score_range, list) and len(score_range) == 2):
        raise ConfigError(f"{where}: score_range must be [low, high]; got {score_range!r}.")
    return Task(
        name=str(entry["name"]),
        type=kind,
        files={split: resolve_path(base, p) for split, p in files.items()},
        text_columns=[str(c) for c in columns],
        score_column=entry.get("score_column"),
        score_range=(float(score_range[0]), float(score_range[1])) if score_range else None,
        label_column=entry.get("label_column"),
        # YAML reads `positive_label: 0` as an int; file values are strings.
        positive_label=None if entry.get("positive_label") is None else str(entry["positive_label"]),
        description=str(entry.get("description", "")),
        source=source,
    )


def resolve_path(base: str, path: Any) -> str:
    return os.path.normpath(os.path.join(base, os.path.expanduser(str(path))))


def parse_retrieval_task(entry: dict, where: str, source: str, base: str) -> Task:
    files = {}
    for split, parts in entry["files"].items():
        if not isinstance(parts, dict) or set(parts) != set(RETRIEVAL_FILES):
            raise ConfigError(f"{where}: each split of a retrieval task maps {', '.join(RETRIEVAL_FILES)} to a file; "
                              f"{split} has {parts!r}.")
        files[split] = {part: resolve_path(base, parts[part]) for part in RETRIEVAL_FILES}
    qrels_columns = entry.get("qrels_columns", list(Task.qrels_columns))
    if not isinstance(qrels_columns, list) or len(qrels_columns) != 3:
        raise ConfigError(f"{where}: qrels_columns must list 3 column names (query id, document id, relevance); got {qrels_columns!r}.")
    return Task(
        name=str(entry["name"]), type="retrieval", files=files, text_columns=[],
        id_column=str(entry.get("id_column", Task.id_column)), text_column=str(entry.get("text_column", Task.text_column)),
        qrels_columns=tuple(str(c) for c in qrels_columns), description=str(entry.get("description", "")), source=source,
    )


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

