"""Training data: a table (any source talas.data.columnar opens) becomes anchor / positive / hard-negative rows.

    from talas.data.examples import load_training_data
    data = load_training_data("data/train/distill_texts_clean.csv")   # kind "single", 19,173 rows
    data = load_training_data("nli.parquet")      # also .tsv, .jsonl, .json, .gz, .arrow, save_to_disk folders
    data = load_training_data("org/name", dataset_config="pair", dataset_split="train")   # a hub dataset
    texts = data.unique_texts()                   # what the teacher cache embeds, each text once
    anchor_ids, positive_ids, negative_ids = data.text_ids()   # rows -> indices into texts

Layouts, detected from the column names the same way for every source (names compared case-insensitively;
an unnamed index column as pandas writes it is ignored), first match wins:

    anchor,positive[,negative]     pair, or triplet with a hard negative per row
    query,positive[,negative]      the same
    query,document[,negative]      pair (retrieval data: a query and a relevant document)
    premise,hypothesis[,label]     NLI, see below
    sentence1,sentence2            pair (a label or score column next to them is an error, see below)
    text                           single: each text is its own positive (SimCSE, dropout makes the views differ)

NLI with a label column keeps the entailment rows as (premise, hypothesis) pairs, drops neutral rows,
and gives each entailment row a contradiction hypothesis of the same premise as hard negative
(cycling through them when a premise has several; None when it has none). Labels are 0/1/2
(entailment/neutral/contradiction, the GLUE/SNLI/AllNLI convention) or those words; QNLI/RTE's
"not_entailment" counts as neutral. Without a label column every row is a positive pair.

Column options override detection role by role: `text_column` alone, or `anchor_column` and
`positive_column` with `negative_column` or `label_column` (NLI labels for any pair of columns).
A label or score column beside sentence1,sentence2 is not guessed, because its meaning differs between
datasets (MRPC: 1 = paraphrase; QNLI/RTE: 0 = entailment; STS-B: a similarity score).

Texts are kept exactly as written and only validated: a missing, empty, null or "nan" text, undecodable
bytes or an unknown label stop the load with the file, line (row) and column, unless `skip_bad_rows`, which
skips and counts such rows (`TrainingData.skipped`). The whole file is read and checked before
`max_samples` keeps the first N rows, so the count of skipped rows covers the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from talas.data.columnar import open_table
from talas.data.tables import Table, bad_byte
from talas.errors import ConfigError, DataError

ENTAILMENT, NEUTRAL, CONTRADICTION = 0, 1, 2
NLI_LABELS = {
    "0": ENTAILMENT,
    "1": NEUTRAL,
    "2": CONTRADICTION,
    "entailment": ENTAILMENT,
    "neutral": NEUTRAL,
    "not_entailment": NEUTRAL,
    "contradiction": CONTRADICTION,
}
# Missing values that reached the file as text (pandas' str(NaN), Python's str(None)); never real sentences.
MISSING = {"nan", "none", "null"}
INDEX_COLUMN = re.compile(r"(Unnamed: \d+)?")  # how pandas names a written index: "" or "Unnamed: 0"
SKIP_HINT = "Fix the row, or pass --skip_bad_rows to skip (and count) such rows."
FORMATS = (
    "text; anchor,positive[,negative]; query,positive[,negative]; query,document[,negative]; "
    "sentence1,sentence2; premise,hypothesis[,label]"
)


@dataclass
class TrainingData:
    path: str
    kind: str  # "single" (one text column: pair = same text twice, SimCSE), "pair", "triplet"
    anchors: list[str]
    positives: list[str]
    negatives: list[str | None]  # hard negative per row, or None
    skipped: int = 0  # rows skipped because of bad input (only with skip_bad_rows=True)
    # unique_texts() and text_ids(), computed together on first use; the rows must not change afterwards.
    _unique: list[str] = field(default_factory=list, init=False, repr=False, compare=False)
    _ids: tuple[list[int], list[int], list[int]] | None = field(default=None, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.anchors)

    def unique_texts(self) -> list[str]:
        """Every distinct text once, in first-appearance order, row by row: anchor, positive, negative."""
        self.text_ids()
        return self._unique

    def text_ids(self) -> tuple[list[int], list[int], list[int]]:
        """Per row, the index into unique_texts() of its anchor, positive and negative (-1: no negative)."""
        if self._ids is None:
            index: dict[str, int] = {}  # insertion-ordered, so its keys are the unique texts
            anchor_ids, positive_ids, negative_ids = [], [], []
            for anchor, positive, negative in zip(self.anchors, self.positives, self.negatives, strict=True):
                anchor_ids.append(index.setdefault(anchor, len(index)))
                positive_ids.append(index.setdefault(positive, len(index)))
                negative_ids.append(-1 if negative is None else index.setdefault(negative, len(index)))
            self._unique = list(index)
            self._ids = (anchor_ids, positive_ids, negative_ids)
        return self._ids


def load_training_data(
    path: str,
    *,
    text_column: str | None = None,
    anchor_column: str | None = None,
    positive_column: str | None = None,
    negative_column: str | None = None,
    label_column: str | None = None,
    skip_bad_rows: bool = False,
    max_samples: int | None = None,
    dataset_config: str = "",
    dataset_split: str = "train",
) -> TrainingData:
    """Read training data (layout detected or named by the column options, see the module docstring).

    `dataset_config` and `dataset_split` choose within a hub dataset; the split also within a save_to_disk
    folder holding several.
    """
    if max_samples is not None and max_samples < 1:
        raise ConfigError(f"max_samples must be a positive number of rows, got {max_samples}.")
    table = open_table(path, config=dataset_config, split=dataset_split)
    flags = {
        "text": text_column,
        "anchor": anchor_column,
        "positive": positive_column,
        "negative": negative_column,
        "label": label_column,
    }
    roles = resolve_columns(table, {role: name for role, name in flags.items() if name is not None})
    text_roles = [role for role in ("text", "anchor", "positive", "negative") if role in roles]
    columns, labels, skipped = checked_rows(table, [roles[r] for r in text_roles], roles.get("label"), skip_bad_rows)
    by_role = dict(zip(text_roles, columns, strict=True))

    if "text" in by_role:
        anchors = by_role["text"]
        positives = list(anchors)
        negatives: list[str | None] = [None] * len(anchors)
    elif labels is not None:
        anchors, positives, negatives = nli_triplets(by_role["anchor"], by_role["positive"], labels)
        if not anchors:
            raise DataError(
                f"{path}: no entailment rows in column {roles['label']!r} (label 0 or 'entailment'), so there "
                "are no positive pairs to train on. Check the label convention of the file."
            )
    else:
        anchors, positives = by_role["anchor"], by_role["positive"]
        negatives = by_role.get("negative") or [None] * len(anchors)

    if max_samples is not None:
        anchors, positives, negatives = anchors[:max_samples], positives[:max_samples], negatives[:max_samples]
    if "text" in by_role:
        kind = "single"
    else:
        kind = "triplet" if any(n is not None for n in negatives) else "pair"
    return TrainingData(path, kind, anchors, positives, negatives, skipped)


def resolve_columns(table: Table, given: dict[str, str]) -> dict[str, str]:
    """Roles ("text", "anchor", "positive", "negative", "label") -> column names: the given ones over the detected."""
    if "text" in given and len(given) > 1:
        others = ", ".join(f"--{role}_column" for role in given if role != "text")
        raise ConfigError(f"--text_column reads single texts; it cannot be combined with {others}.")
    if "label" in given and "negative" in given:
        raise ConfigError(
            "Pass either --negative_column (a hard-negative column) or --label_column (NLI labels, whose "
            "contradictions become the hard negatives), not both."
        )
    table.require(*given.values())
    if "text" in given:
        return given
    detected = detect_columns(table.columns)
    if not given:
        if not detected:
            raise DataError(
                f"{table.path}: cannot tell which columns hold the training texts; columns found: {named(table)}. "
                f"Name them as one of these formats: {FORMATS}; or pass --text_column COLUMN, or "
                "--anchor_column COLUMN --positive_column COLUMN [--negative_column COLUMN | --label_column COLUMN]."
            )
        scored = find_column(table.columns, "label", "score")
        if scored and detected.get("anchor", "").lower() == "sentence1":
            a, b = detected["anchor"], detected["positive"]
            raise DataError(
                f"{table.path}: columns {a},{b} come with a {scored!r} column, whose meaning differs between "
                "datasets (MRPC: 1 = paraphrase; QNLI/RTE: 0 = entailment; STS-B: a score), so it is not guessed. "
                f"Pass --anchor_column {a} --positive_column {b} to use every row as a positive pair, or "
                f"--label_column {scored} to read NLI labels (0 entailment, 1 neutral, 2 contradiction)."
            )
        return detected
    # A detected single-text column means nothing once pair columns are named, and an explicit negative
    # column or label column replaces the other way of finding hard negatives.
    detected.pop("text", None)
    if "label" in given:
        detected.pop("negative", None)
    if "negative" in given:
        detected.pop("label", None)
    roles = {**detected, **given}
    if "anchor" not in roles or "positive" not in roles:
        raise ConfigError(
            f"{table.path}: pass both --anchor_column and --positive_column (columns found: {named(table)}), "
            "or --text_column for single texts."
        )
    return roles


def detect_columns(columns: list[str]) -> dict[str, str]:
    """Roles -> column names for the first known format the header matches; {} when none does."""
    for anchor_name, positive_name in (("anchor", "positive"), ("query", "positive"), ("query", "document")):
        anchor, positive = find_column(columns, anchor_name), find_column(columns, positive_name)
        if anchor and positive:
            negative = find_column(columns, "negative")
            return {"anchor": anchor, "positive": positive} | ({"negative": negative} if negative else {})
    premise, hypothesis = find_column(columns, "premise"), find_column(columns, "hypothesis")
    if premise and hypothesis:
        label = find_column(columns, "label", "gold_label")
        return {"anchor": premise, "positive": hypothesis} | ({"label": label} if label else {})
    sentence1, sentence2 = find_column(columns, "sentence1"), find_column(columns, "sentence2")
    if sentence1 and sentence2:
        return {"anchor": sentence1, "positive": sentence2}
    text = find_column(columns, "text")
    return {"text": text} if text else {}


def named(table: Table) -> str:
    """The table's columns for a message, without the unnamed index column that only numbers the rows."""
    return ", ".join(repr(c) for c in table.columns if not INDEX_COLUMN.fullmatch(c))


def find_column(columns: list[str], *names: str) -> str | None:
    """The first column whose name matches one of `names`, ignoring case and surrounding spaces."""
    lowered = {c.strip().lower(): c for c in reversed(columns)}  # reversed: the first of equal names wins
    return next((lowered[n] for n in names if n in lowered), None)


def checked_rows(
    table: Table, text_columns: list[str], label_column: str | None, skip_bad_rows: bool
) -> tuple[list[list[str]], list[int] | None, int]:
    """The good rows' values per text column, their NLI labels (None without a label column), the skip count."""
    # Column by column with comprehensions, not row by row: a 1M-row file must load in seconds.
    values = [table.values(column) for column in text_columns]
    bad_rows = {
        column: bad_texts(texts, table.has_bad_bytes) for column, texts in zip(text_columns, values, strict=True)
    }
    labels = None
    if label_column:
        labels = nli_labels(table.values(label_column))
        bad_rows[label_column] = [i for i, label in enumerate(labels) if label < 0]
    bad = sorted(set().union(*bad_rows.values()))
    if not bad:
        return values, labels, 0

    # Each list is ascending, so the first bad row is at the head of the list of its (first) bad column.
    column = next(c for c, rows in bad_rows.items() if rows and rows[0] == bad[0])
    value = table.values(column)[bad[0]]
    problem = (
        f"unknown label {value!r}; expected 0, 1, 2 or entailment, neutral, contradiction (any case)"
        if column == label_column
        else text_problem(value)
    )
    where = f"{table.where(bad[0])}, column {column!r}: {problem}"
    if not skip_bad_rows:
        raise DataError(f"{table.path}: {where}. {SKIP_HINT}")
    if len(bad) == len(values[0]):
        raise DataError(f"{table.path}: no usable row, all {len(bad)} are bad (the first: {where}). Fix the file.")
    skip = set(bad)
    values = [[text for i, text in enumerate(texts) if i not in skip] for texts in values]
    if labels is not None:
        labels = [label for i, label in enumerate(labels) if i not in skip]
    return values, labels, len(bad)


def bad_texts(texts: list[str | None], has_bad_bytes: bool) -> list[int]:
    """Indices of the missing, blank or "nan" texts, and of those holding undecodable bytes."""
    return [
        i
        for i, text in enumerate(texts)
        if not text
        or text.isspace()
        or (len(text) <= 6 and text.strip().lower() in MISSING)  # the length test spares real sentences the copies
        or (has_bad_bytes and bad_byte(text) is not None)
    ]


def text_problem(text: str | None) -> str:
    """Why bad_texts() flagged `text`, with the fix."""
    if text is None:
        return "no value (the key is missing from this JSON object)"
    if not text.strip():
        return "empty text"
    byte = bad_byte(text)
    if byte is not None:
        return f"byte {byte:#04x} is not valid UTF-8 (re-save the file as UTF-8, e.g. `iconv -f latin1 -t utf-8`)"
    return f"a missing value written as text ({text!r})"


def nli_labels(raw: list[str | None]) -> list[int]:
    """ENTAILMENT / NEUTRAL / CONTRADICTION per value, -1 for an unknown one."""
    # A label column holds a handful of distinct values: normalise each once.
    # pandas writes an integer column that holds a NaN as floats ("0.0").
    codes = {value: NLI_LABELS.get((value or "").strip().lower().removesuffix(".0"), -1) for value in set(raw)}
    return [codes[value] for value in raw]


def nli_triplets(
    premises: list[str], hypotheses: list[str], labels: list[int]
) -> tuple[list[str], list[str], list[str | None]]:
    """(premise, entailed hypothesis, contradiction of the same premise or None) per entailment row."""
    contradictions: dict[str, list[str]] = {}
    for i, label in enumerate(labels):
        if label == CONTRADICTION:
            contradictions.setdefault(premises[i], []).append(hypotheses[i])
    entailed = [i for i, label in enumerate(labels) if label == ENTAILMENT]
    anchors = [premises[i] for i in entailed]
    # Successive entailment rows of a premise take its contradictions in turn, starting over when they run out.
    # A counter per premise rather than an iterator: a million small objects keep CPython's GC busy for seconds.
    turns: dict[str, int] = {}
    negatives: list[str | None] = []
    for premise in anchors:
        options = contradictions.get(premise)
        if options is None:
            negatives.append(None)
            continue
        turn = turns.get(premise, 0)
        turns[premise] = turn + 1
        negatives.append(options[turn % len(options)])
    return anchors, [hypotheses[i] for i in entailed], negatives


def load_from_config(cfg) -> TrainingData:
    """The training data a run's config names, with its column options (empty string = detect)."""
    return load_training_data(
        cfg.train_data_path, text_column=cfg.text_column or None, anchor_column=cfg.anchor_column or None,
        positive_column=cfg.positive_column or None, negative_column=cfg.negative_column or None,
        label_column=cfg.label_column or None, skip_bad_rows=cfg.skip_bad_rows, max_samples=cfg.max_train_samples or None,
        dataset_config=cfg.dataset_config, dataset_split=cfg.dataset_split,
    )
