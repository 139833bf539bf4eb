"""Task declarations: the YAML file of evaluation tasks, parsed and checked, and each task's files read.

    from talas.eval.task_file import load_tasks
    tasks = load_tasks(None)        # the bundled suite (talas/eval/tasks/bundled.yaml)
    tasks[0].read("test")           # one split's texts and targets, checked line by line

A task names its type (sts, pair_classification, classification, retrieval), its files per split
and its columns; every mistake in the YAML or a data file is one message naming the file and line,
raised before any model loads. The format is described in docs/evaluation.md.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from talas.data.tables import read_table
from talas.errors import ConfigError, DataError

BUNDLED_TASKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tasks", "bundled.yaml")
TASK_TYPES = ("sts", "pair_classification", "classification", "retrieval")
SPLITS = ("train", "validation", "test")
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
