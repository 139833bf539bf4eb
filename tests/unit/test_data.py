"""Training-data readers: formats, column detection, text ids, and the messages for bad input.

.venv/bin/pytest tests/unit/test_data.py -q
"""

from __future__ import annotations

from pathlib import Path

import pytest

from talas.data.examples import load_training_data
from talas.errors import ConfigError, DataError

TRAIN = Path(__file__).resolve().parents[2] / "data" / "train"


def write(tmp_path: Path, name: str, content: str | bytes) -> str:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return str(path)


# --- formats --------------------------------------------------------------------------------------


def test_single_text_column_pairs_each_text_with_itself(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "text,source\n  A cat Sits. ,x\nA dog runs.,y\n")
    data = load_training_data(path)
    assert data.kind == "single" and len(data) == 2 and data.skipped == 0 and data.path == path
    assert data.anchors == ["  A cat Sits. ", "A dog runs."]  # kept exactly as written
    assert data.positives == data.anchors and data.negatives == [None, None]
    assert data.unique_texts() == ["  A cat Sits. ", "A dog runs."]
    assert data.text_ids() == ([0, 1], [0, 1], [-1, -1])


NLI_ROWS = [  # premise P1 has two contradictions (cycled), P2 none, P3 only a contradiction (no positive)
    ("P1", "E1a", "entailment"),
    ("P1", "N1", "neutral"),
    ("P1", "C1a", "contradiction"),
    ("P2", "E2", "entailment"),
    ("P1", "E1b", "entailment"),
    ("P3", "C3", "contradiction"),
    ("P1", "E1c", "entailment"),
    ("P1", "C1b", "contradiction"),
]
NLI_EXPECTED = (
    ["P1", "P2", "P1", "P1"],
    ["E1a", "E2", "E1b", "E1c"],
    ["C1a", None, "C1b", "C1a"],
)


@pytest.mark.parametrize(
    "names",
    [
        {"entailment": "0", "neutral": "1", "contradiction": "2"},
        {"entailment": "0.0", "neutral": "1.0", "contradiction": "2.0"},  # pandas floats
        {"entailment": "Entailment", "neutral": "NEUTRAL", "contradiction": " contradiction "},
    ],
    ids=["ints", "floats", "words"],
)
def test_nli_with_labels_makes_triplets_from_contradictions(tmp_path: Path, names: dict[str, str]) -> None:
    lines = ["premise,hypothesis,label"] + [f"{p},{h},{names[label]}" for p, h, label in NLI_ROWS]
    data = load_training_data(write(tmp_path, "nli.csv", "\n".join(lines) + "\n"))
    assert data.kind == "triplet" and data.skipped == 0
    assert (data.anchors, data.positives, data.negatives) == NLI_EXPECTED


def test_nli_jsonl_with_int_labels_and_unique_text_ids(tmp_path: Path) -> None:
    codes = {"entailment": 0, "neutral": 1, "contradiction": 2}
    lines = [f'{{"premise": "{p}", "hypothesis": "{h}", "label": {codes[label]}}}' for p, h, label in NLI_ROWS]
    data = load_training_data(write(tmp_path, "nli.jsonl", "\n".join(lines) + "\n"))
    assert (data.anchors, data.positives, data.negatives) == NLI_EXPECTED
    # Row by row (anchor, positive, negative), each text once: the repeated premise P1 and the reused C1a keep one id.
    assert data.unique_texts() == ["P1", "E1a", "C1a", "P2", "E2", "E1b", "C1b", "E1c"]
    assert data.text_ids() == ([0, 3, 0, 0], [1, 4, 5, 7], [2, -1, 6, 2])
    assert data.text_ids() is data.text_ids()  # computed once


def test_nli_without_label_column_uses_every_row_as_a_pair(tmp_path: Path) -> None:
    data = load_training_data(write(tmp_path, "nli.csv", "premise,hypothesis\nP,H1\nP,H2\n"))
    assert data.kind == "pair"
    assert (data.anchors, data.positives, data.negatives) == (["P", "P"], ["H1", "H2"], [None, None])
    assert data.unique_texts() == ["P", "H1", "H2"] and data.text_ids() == ([0, 0], [1, 2], [-1, -1])


def test_nli_without_any_entailment_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "nli.csv", "premise,hypothesis,label\nP,H,1\nP,C,2\n")
    with pytest.raises(DataError, match=r"no entailment rows in column 'label'"):
        load_training_data(path)


def test_sentence_pairs(tmp_path: Path) -> None:
    data = load_training_data(write(tmp_path, "p.csv", "sentence1,sentence2\nA,B\nC,D\n"))
    assert data.kind == "pair" and (data.anchors, data.positives) == (["A", "C"], ["B", "D"])


def test_sentence_pairs_with_a_label_are_not_guessed(tmp_path: Path) -> None:
    path = write(tmp_path, "mrpc.csv", "sentence1,sentence2,label\nA,B,1\nC,D,0\nC,E,2\n")
    with pytest.raises(DataError, match=r"mrpc\.csv: columns sentence1,sentence2 come with a 'label' column") as err:
        load_training_data(path)
    assert "--anchor_column sentence1 --positive_column sentence2" in str(err.value)
    assert "--label_column label" in str(err.value)
    every_row = load_training_data(path, anchor_column="sentence1", positive_column="sentence2")
    assert every_row.anchors == ["A", "C", "C"] and every_row.kind == "pair"
    as_nli = load_training_data(path, label_column="label")  # anchor/positive still detected
    assert (as_nli.anchors, as_nli.positives, as_nli.negatives) == (["C"], ["D"], ["E"])


def test_anchor_positive_negative_triplets_and_pairs(tmp_path: Path) -> None:
    data = load_training_data(write(tmp_path, "t.csv", "anchor,positive,negative\nA,P,N\nB,Q,N\n"))
    assert data.kind == "triplet" and data.negatives == ["N", "N"]
    assert data.unique_texts() == ["A", "P", "N", "B", "Q"] and data.text_ids() == ([0, 3], [1, 4], [2, 2])
    pairs = load_training_data(write(tmp_path, "p.csv", "Anchor,Positive\nA,P\n"))  # names ignore case
    assert pairs.kind == "pair" and (pairs.anchors, pairs.positives, pairs.negatives) == (["A"], ["P"], [None])


@pytest.mark.parametrize(("header", "kind"), [("query,positive,negative", "triplet"), ("query,document,extra", "pair")])
def test_query_formats(tmp_path: Path, header: str, kind: str) -> None:
    data = load_training_data(write(tmp_path, "q.csv", f"{header}\nwhat is it,it is this,it is that\n"))
    assert data.kind == kind and data.anchors == ["what is it"] and data.positives == ["it is this"]


def test_tsv_keeps_commas_and_quotes(tmp_path: Path) -> None:
    path = write(tmp_path, "t.tsv", 'anchor\tpositive\nHello, "world"\tHi, there\n')
    data = load_training_data(path)
    assert (data.anchors, data.positives) == (['Hello, "world"'], ["Hi, there"])


def test_jsonl_single_texts(tmp_path: Path) -> None:
    data = load_training_data(write(tmp_path, "t.jsonl", '{"text": "one", "id": 1}\n\n{"text": "two", "id": 2}\n'))
    assert data.kind == "single" and data.anchors == ["one", "two"]


def test_explicit_columns_override_detection(tmp_path: Path) -> None:
    path = write(tmp_path, "x.csv", "text,paraphrase,other\nA,B,C\nD,E,F\n")
    pairs = load_training_data(path, anchor_column="text", positive_column="paraphrase", negative_column="other")
    assert pairs.kind == "triplet" and (pairs.anchors, pairs.positives, pairs.negatives) == (
        ["A", "D"],
        ["B", "E"],
        ["C", "F"],
    )
    single = load_training_data(path, text_column="other")
    assert single.kind == "single" and single.anchors == ["C", "F"]
    nli = write(tmp_path, "nli.csv", "premise,hypothesis,label,hard\nP,H,0,X\n")
    assert load_training_data(nli, negative_column="hard").negatives == ["X"]  # replaces the detected label


def test_conflicting_or_incomplete_flags_are_config_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "x.csv", "a,b,c\nA,B,C\n")
    with pytest.raises(ConfigError, match=r"--text_column .* cannot be combined with --anchor_column"):
        load_training_data(path, text_column="a", anchor_column="b")
    with pytest.raises(ConfigError, match=r"either --negative_column .* or --label_column"):
        load_training_data(path, anchor_column="a", positive_column="b", negative_column="c", label_column="c")
    with pytest.raises(ConfigError, match=r"x\.csv: pass both --anchor_column and --positive_column"):
        load_training_data(path, anchor_column="a")
    with pytest.raises(ConfigError, match=r"max_samples must be a positive"):
        load_training_data(path, text_column="a", max_samples=0)


@pytest.mark.parametrize("index", ["", "Unnamed: 0"])
def test_unnamed_index_column_is_ignored(tmp_path: Path, index: str) -> None:
    data = load_training_data(write(tmp_path, "t.csv", f"{index},text\n0,first\n1,second\n"))
    assert data.kind == "single" and data.anchors == ["first", "second"]
    with pytest.raises(DataError) as err:
        load_training_data(write(tmp_path, "u.csv", f"{index},body\n0,first\n"))
    assert "columns found: 'body'." in str(err.value)


def test_unknown_format_lists_columns_and_flags(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        load_training_data(write(tmp_path, "odd.csv", "question,answer\nQ,A\n"))
    message = str(err.value)
    assert "odd.csv: cannot tell which columns hold the training texts" in message
    assert "columns found: 'question', 'answer'" in message
    for flag in ("--text_column", "--anchor_column", "--positive_column", "--negative_column", "--label_column"):
        assert flag in message


def test_max_samples_keeps_the_first_rows(tmp_path: Path) -> None:
    data = load_training_data(write(tmp_path, "t.csv", "text\na\nb\nc\n"), max_samples=2)
    assert data.anchors == ["a", "b"] and data.unique_texts() == ["a", "b"]
    lines = ["premise,hypothesis,label"] + [f"{p},{h},{label}" for p, h, label in NLI_ROWS]
    nli = load_training_data(write(tmp_path, "nli.csv", "\n".join(lines) + "\n"), max_samples=2)
    assert (nli.anchors, nli.positives, nli.negatives) == (["P1", "P2"], ["E1a", "E2"], ["C1a", None])
    assert nli.kind == "triplet"


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "problem"),
    [('""', "empty text"), ('"   "', "empty text"), ("nan", r"a missing value written as text \('nan'\)")],
)
def test_bad_text_names_file_line_column_and_fix(tmp_path: Path, cell: str, problem: str) -> None:
    path = write(tmp_path, "p.csv", f"anchor,positive\nA,B\nC,{cell}\n")
    with pytest.raises(DataError, match=rf"p\.csv: line 3, column 'positive': {problem}\. .*--skip_bad_rows"):
        load_training_data(path)


def test_line_numbers_count_multiline_fields(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", 'text\n"two\nlines"\n""\n')
    with pytest.raises(DataError, match=r"t\.csv: line 4, column 'text': empty text"):
        load_training_data(path)


def test_missing_jsonl_key(tmp_path: Path) -> None:
    path = write(tmp_path, "p.jsonl", '{"anchor": "A", "positive": "B"}\n{"anchor": "C"}\n')
    with pytest.raises(DataError, match=r"p\.jsonl: line 2, column 'positive': no value \(the key is missing"):
        load_training_data(path)


def test_missing_explicit_column(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "text\nA\n")
    with pytest.raises(DataError, match=r"t\.csv: missing column\(s\) 'body'; columns found: 'text'"):
        load_training_data(path, text_column="body")


def test_non_utf8_bytes_name_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", b"text,source\nfine,x\ncaf\xe9 au lait,y\nalso fine,\xff\n")
    with pytest.raises(DataError, match=r"t\.csv: line 3, column 'text': byte 0xe9 is not valid UTF-8.*iconv"):
        load_training_data(path)
    data = load_training_data(path, skip_bad_rows=True)  # the bad byte in the unused column does not matter
    assert data.anchors == ["fine", "also fine"] and data.skipped == 1


def test_unknown_label(tmp_path: Path) -> None:
    path = write(tmp_path, "nli.csv", "premise,hypothesis,label\nP,H,0\nP,H2,-1\n")
    with pytest.raises(DataError, match=r"nli\.csv: line 3, column 'label': unknown label '-1'; expected 0, 1, 2"):
        load_training_data(path)
    assert load_training_data(path, skip_bad_rows=True).skipped == 1


def test_skip_bad_rows_counts_every_bad_row(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", "anchor,positive,negative\nA,B,C\n,B,C\nD,E,F\nG, ,H\nI,J,\nK,L,M\n")
    data = load_training_data(path, skip_bad_rows=True)
    assert data.skipped == 3 and data.anchors == ["A", "D", "K"] and data.negatives == ["C", "F", "M"]
    assert data.text_ids() == ([0, 3, 6], [1, 4, 7], [2, 5, 8])
    with pytest.raises(DataError, match=r"p\.csv: line 3, column 'anchor': empty text"):
        load_training_data(path)  # the first bad row, without skipping


def test_a_file_of_only_bad_rows_fails_even_when_skipping(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", 'text\n""\nNaN\n')
    with pytest.raises(DataError, match=r"t\.csv: no usable row, all 2 are bad \(the first: line 2, column 'text'"):
        load_training_data(path, skip_bad_rows=True)


# --- bundled files --------------------------------------------------------------------------------


def test_bundled_distillation_texts() -> None:
    data = load_training_data(str(TRAIN / "distill_texts_clean.csv"))
    assert data.kind == "single" and len(data) == 19_173 and data.skipped == 0
    assert len(data.unique_texts()) == 19_173  # de-duplicated


def test_bundled_debug_file_with_unnamed_index() -> None:
    data = load_training_data(str(TRAIN / "test_debug.csv"))
    assert data.kind == "single" and len(data) == 106
    assert data.anchors[0].startswith("i didn t feel like getting shaken down")
