"""Training data from every source (talas.data.columnar): each format loads the examples of the same CSV,
with the same data fingerprint; hub ids without a hub fail with one clear line; a tiny run trains on Parquet.
"""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from e2e_helpers import SENTENCES  # noqa: E402

from talas import cli
from talas.data.examples import load_training_data
from talas.errors import DataError
from talas.train.checkpoint import data_fingerprint

# NLI rows (integer labels, as hub datasets store them) and texts that need quoting in a CSV.
PREMISES = ["A man, with a hat, plays.", 'She said "hi" twice', "Zwei Hunde é 😀", "line\nbreak inside"]
COLUMNS = {
    "premise": [p for p in PREMISES for _ in range(3)],
    "hypothesis": [f"{kind} {p}" for p in PREMISES for kind in ("so", "maybe", "never")],
    "label": [0, 1, 2] * len(PREMISES),
}


def rows(columns: dict[str, list]) -> list[dict]:
    return [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def write_csv(path: Path, columns: dict[str, list], delimiter: str = ",", opener=open) -> str:
    with opener(path, "wt", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(columns)
        writer.writerows(zip(*columns.values(), strict=True))
    return str(path)


def write_jsonl(path: Path, columns: dict[str, list]) -> str:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows(columns))
    return str(path)


def save_to_disk(path: Path, columns: dict[str, list], split: str | None = None) -> str:
    dataset = datasets.Dataset.from_dict(columns)
    if split:  # a DatasetDict, with another split beside the one read
        other = datasets.Dataset.from_dict({k: list(reversed(v)) for k, v in columns.items()})
        dataset = datasets.DatasetDict({"other": other, split: dataset})
    dataset.save_to_disk(str(path))
    return str(path)


def write_arrow(path: Path, columns: dict[str, list]) -> str:
    table = pa.table(columns)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return str(path)


def write_parquet(path: Path, columns: dict[str, list]) -> str:
    pq.write_table(pa.table(columns), path)
    return str(path)


def write_json_array(path: Path, columns: dict[str, list]) -> str:
    path.write_text(json.dumps(rows(columns), indent=1), encoding="utf-8")
    return str(path)


WRITERS = {
    "parquet": lambda d, c: write_parquet(d / "nli.parquet", c),
    "json array": lambda d, c: write_json_array(d / "nli.json", c),
    "csv.gz": lambda d, c: write_csv(d / "nli.csv.gz", c, opener=gzip.open),
    "tsv.gz": lambda d, c: write_csv(d / "nli.tsv.gz", c, "\t", opener=gzip.open),
    "jsonl.gz": lambda d, c: write_jsonl(d / "nli.jsonl.gz", c),
    "save_to_disk": lambda d, c: save_to_disk(d / "nli_dataset", c),
    "save_to_disk splits": lambda d, c: save_to_disk(d / "nli_dict", c, split="train"),
    "arrow file": lambda d, c: write_arrow(d / "nli.arrow", c),
}


@pytest.mark.parametrize("form", WRITERS)
def test_each_format_loads_the_examples_of_the_same_csv(form, tmp_path):
    expected = load_training_data(write_csv(tmp_path / "nli.csv", COLUMNS))
    assert expected.kind == "triplet" and len(expected) == len(PREMISES)  # labels read: entailments + contradictions
    data = load_training_data(WRITERS[form](tmp_path, COLUMNS))
    assert (data.kind, data.anchors, data.positives, data.negatives) == (
        expected.kind, expected.anchors, expected.positives, expected.negatives)
    # The fingerprint hashes the rows, not the path or the format, so --resume accepts the same data
    # converted to another format, and refuses other content in any format.
    assert data_fingerprint(data) == data_fingerprint(expected)


@pytest.mark.parametrize("form", ["parquet", "save_to_disk", "json array"])
def test_column_options_and_query_document_layout_work_the_same_for_every_format(form, tmp_path):
    columns = {"query": SENTENCES[:4], "document": SENTENCES[4:8], "id": [1, 2, 3, 4], "other": SENTENCES[8:]}
    data = load_training_data(WRITERS[form](tmp_path, columns))
    assert data.kind == "pair" and data.anchors == SENTENCES[:4] and data.positives == SENTENCES[4:8]
    chosen = load_training_data(WRITERS[form](tmp_path, columns), anchor_column="other", positive_column="query",
                                negative_column="document")
    assert (chosen.anchors, chosen.positives, chosen.negatives) == (SENTENCES[8:], SENTENCES[:4], SENTENCES[4:8])
    assert load_training_data(WRITERS[form](tmp_path, columns), text_column="id").anchors == ["1", "2", "3", "4"]


def test_parquet_reads_only_the_columns_the_rows_use(tmp_path, monkeypatch):
    # A column no cast makes text (a list per row) is never read unless a column option names it.
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": SENTENCES, "vector": [[0.5, 1.0]] * len(SENTENCES)}), path)
    read = []
    real = pq.ParquetFile.read
    monkeypatch.setattr(pq.ParquetFile, "read", lambda self, columns=None, **kw: read.append(columns) or real(self, columns, **kw))
    assert load_training_data(str(path)).anchors == SENTENCES
    assert read == [["text"]]
    with pytest.raises(DataError, match=r"^.*d\.parquet: column 'vector' holds list<element: double> values, not texts\. "):
        load_training_data(str(path), text_column="vector")


def test_bad_rows_are_named_by_row_or_item(tmp_path):
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"anchor": ["a", None, "c"], "positive": ["x", "y", "z"]}), path)
    with pytest.raises(DataError, match=r"d\.parquet: row 2, column 'anchor': empty text\. Fix the row, or pass --skip_bad_rows"):
        load_training_data(str(path))
    assert load_training_data(str(path), skip_bad_rows=True).anchors == ["a", "c"]
    array = tmp_path / "d.json"
    array.write_text('[{"text": "a"},\n "b"]', encoding="utf-8")
    with pytest.raises(DataError, match=r"d\.json: item 2 is not a JSON object; the array must hold objects\.$"):
        load_training_data(str(array))
    array.write_text('[{"text": "a"},\n {"text": ""}]', encoding="utf-8")
    with pytest.raises(DataError, match=r"d\.json: item 2, column 'text': empty text\."):
        load_training_data(str(array))
    (tmp_path / "bad.csv.gz").write_bytes(b"text\nnot gzip\n")
    with pytest.raises(DataError, match=r"bad\.csv\.gz: not a readable gzip file \(.*\)\. Re-compress it, or pass it uncompressed\.$"):
        load_training_data(str(tmp_path / "bad.csv.gz"))


HUB_UNREACHABLE = (
    "Data path 'org/name' is not a local file or folder, and looks like a hub dataset id, but the Hugging Face hub "
    "could not be reached (offline, or HF_HUB_OFFLINE=1). Download it where the hub is reachable "
    "(`datasets.load_dataset(...).save_to_disk(FOLDER)`, or a .parquet/.csv file) and pass that path, or fix the network."
)


def test_hub_id_without_hub_is_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    calls = []

    def unreachable(name, config=None, split=None):  # what datasets raises offline, without touching the network
        calls.append((name, config, split))
        raise ConnectionError(f"Couldn't reach '{name}' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    with pytest.raises(DataError) as caught:
        load_training_data("org/name", dataset_config="pair", dataset_split="dev")
    assert str(caught.value) == HUB_UNREACHABLE and calls == [("org/name", "pair", "dev")]
    assert cli.main(["train", "--train_data_path", "org/name", "--device", "cpu"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == ["error: " + HUB_UNREACHABLE]


def test_hub_id_with_hub_offline_through_datasets(tmp_path, monkeypatch):
    # The real datasets call, kept off the network by HF_HUB_OFFLINE=1 (set for the whole suite).
    from huggingface_hub import constants

    if not constants.HF_HUB_OFFLINE:
        pytest.skip("HF_HUB_OFFLINE is not set, so this would reach for the network")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as caught:
        load_training_data("talas-tests/no-such-dataset")
    assert str(caught.value) == HUB_UNREACHABLE.replace("org/name", "talas-tests/no-such-dataset")


def test_hub_dataset_is_read_with_its_config_and_split(monkeypatch):
    def load(name, config=None, split=None):
        assert (name, config, split) == ("org/name", "pair", "dev")
        return datasets.Dataset.from_dict({"anchor": SENTENCES[:3], "positive": SENTENCES[3:6]})

    monkeypatch.setattr(datasets, "load_dataset", load)
    data = load_training_data("org/name", dataset_config="pair", dataset_split="dev")
    assert data.path == "org/name" and data.anchors == SENTENCES[:3] and data.positives == SENTENCES[3:6]


@pytest.mark.parametrize("path", ["missing.csv", "data/missing.parquet", "nested/dir/missing", "missing"])
def test_a_missing_path_that_is_no_hub_id_keeps_the_does_not_exist_message(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("a path is not a hub id"))
    with pytest.raises(DataError, match=f"^Data file '{path}' does not exist. Check the path"):
        load_training_data(path)


def test_folder_errors_name_what_is_missing(tmp_path):
    with pytest.raises(DataError, match="is a folder but not a `datasets` save_to_disk folder"):
        load_training_data(str(tmp_path))
    folder = save_to_disk(tmp_path / "dict", COLUMNS, split="train")
    with pytest.raises(DataError, match=r"no split 'test' in this dataset; its splits: other, train\. Pass --dataset_split SPLIT\.$"):
        load_training_data(folder, dataset_split="test")
    assert load_training_data(folder, dataset_split="other").anchors[0] == PREMISES[-1]


def test_train_runs_on_a_tiny_parquet_and_a_split_of_a_saved_dataset(tmp_path, monkeypatch, tiny_bert, tiny_qwen3):
    monkeypatch.chdir(tmp_path)
    pq.write_table(pa.table({"text": SENTENCES}), "texts.parquet")
    base = ["train", "--student_model_name", str(tiny_bert), "--teacher_model_name", str(tiny_qwen3),
            "--batch_size", "4", "--max_steps", "2", "--max_length", "24", "--device", "cpu", "--log_steps", "1"]
    assert cli.main([*base, "--train_data_path", "texts.parquet", "--save_dir", "run"]) == 0
    assert json.loads(Path("run/run.json").read_text())["data"]["rows"] == len(SENTENCES)
    save_to_disk(tmp_path / "saved", {"text": SENTENCES}, split="dev")
    assert cli.main([*base, "--train_data_path", "saved", "--dataset_split", "dev", "--save_dir", "run2",
                     "--cache_path", "cache2/t.safetensors"]) == 0
    assert json.loads(Path("run2/run.json").read_text())["data"] == json.loads(Path("run/run.json").read_text())["data"]
