"""docs/errors.md is backed by tests: every row names a test that exists, and every row whose test is
``test_catalogue_row[<id>]`` runs here: its bad input, through the CLI in a folder holding a tiny
student and teacher, prints exactly the row's message (one line, exit status 2, no traceback)."""

import os
import re
import shutil

import pytest
from e2e_helpers import broken_copy
from test_train import write_nli

from talas import cli

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DOC = os.path.join(ROOT, "docs", "errors.md")
BASE = ["train", "--train_data_path", "nli.csv", "--student_model_name", "student", "--teacher_model_name", "teacher",
        "--save_dir", "run", "--batch_size", "4", "--epochs", "1", "--max_length", "32", "--device", "cpu",
        "--cache_path", "cache/c.safetensors"]


def doc_rows() -> list[tuple[str, str, str]]:
    """(id, message, tests) of every table row of docs/errors.md; tests: node ids joined by "; "."""
    rows = []
    for line in open(DOC, encoding="utf-8"):
        cells = [c.strip() for c in line.strip().split("|")]
        if len(cells) == 6 and re.fullmatch(r"[A-Z]+\d+", cells[1]):
            # The test cell: backticked node ids separated by "; ", each possibly followed by a remark.
            rows.append((cells[1], cells[3].strip("`"), cells[4].replace("`", "")))
    return rows


def earlier_run():
    assert cli.main([*BASE, "--save_steps", "1"]) == 0  # 3 steps: checkpoints step-2 and step-3 kept


def other_data():
    earlier_run()
    shutil.copy("nli.csv", "other.csv")
    with open("other.csv", "a", encoding="utf-8") as handle:
        handle.write("an extra premise,an extra hypothesis,0\n")


# id → (extra flags after BASE, set-up run first, TALAS_FAULT)
CASES = {
    "O1": (["--batch_size", "0"], None, None),
    "O2": (["--batch_size", "-3"], None, None),
    "O3": (["--epochs", "0"], None, None),
    "O4": (["--learning_rate", "-1"], None, None),
    "O5": (["--learning_rate", "nan"], None, None),
    "O6": (["--temperature", "0"], None, None),
    "O7": (["--temperature", "nan"], None, None),
    "O8": (["--max_length", "0"], None, None),
    "O9": (["--grad_accum_steps", "0"], None, None),
    "O10": (["--log_steps", "0"], None, None),
    "O11": (["--warmup_ratio", "1"], None, None),
    "O12": (["--weight_decay", "-0.01"], None, None),
    "O13": (["--max_grad_norm", "-1"], None, None),
    "O14": (["--cache_chunk_size", "0"], None, None),
    "O15": (["--cache_batch_size", "0"], None, None),
    "O16": (["--save_steps", "-1"], None, None),
    "O17": (["--config", "bad.yaml"], lambda: open("bad.yaml", "w").write("batch_size: 0\n"), None),
    "O18": (["--resume", "latest", "--overwrite"], None, None),
    "F1": (["--train_data_path", "data_folder"], lambda: os.makedirs("data_folder"), None),
    "M1": (["--student_model_name", "broken"], lambda: broken_copy("student", "config"), None),
    "M2": (["--student_model_name", "broken"], lambda: broken_copy("student", "weights"), None),
    "M3": (["--student_model_name", "broken"], lambda: broken_copy("student", "tokenizer"), None),
    "M4": (["--teacher_model_name", "broken"], lambda: broken_copy("teacher", "config"), None),
    "M5": (["--max_length", "1000"], None, None),
    "R1": (["--learning_rate", "5e-5"], earlier_run, None),
    "R2": (["--resume", "latest", "--learning_rate", "5e-5", "--seed", "7"], earlier_run, None),
    "R3": (["--resume", "latest", "--train_data_path", "other.csv"], other_data, None),
    "R4": (["--resume", "latest"], None, None),
    "R5": (["--resume", "run/checkpoints/step-2.tmp"], None, None),
    "R6": (["--save_dir", "a_file/run"], lambda: open("a_file", "w").write("not a folder"), None),
    "R7": (["--save_dir", "/proc/talas_run"], None, None),
    "R8": (["--learning_rate", "1e30"], None, None),
    "R9": (["--save_steps", "1"], None, "checkpoint_enospc:2"),
}
RUN_HERE = [row for row in doc_rows() if row[2].startswith("tests/integration/test_errors_catalogue.py::test_catalogue_row[")]


@pytest.mark.parametrize("row", RUN_HERE, ids=[row[0] for row in RUN_HERE])
def test_catalogue_row(row, tmp_path, monkeypatch, capsys, tiny_bert, tiny_qwen3):
    ident, message, test = row
    assert test.endswith(f"[{ident}]"), f"row {ident} cites the case of another row: {test}"
    flags, setup, fault = CASES[ident]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TALAS_FAULT", raising=False)
    os.symlink(tiny_bert, "student")
    os.symlink(tiny_qwen3, "teacher")
    write_nli(tmp_path / "nli.csv")
    if setup:
        setup()
        capsys.readouterr()
    if fault:
        monkeypatch.setenv("TALAS_FAULT", fault)
    assert cli.main([*BASE, *flags]) == 2
    err = capsys.readouterr().err
    assert message in err.splitlines(), f"{ident}: expected the line\n{message}\ngot\n{err[-2000:]}"
    assert "Traceback" not in err


def test_every_case_has_its_row_and_every_row_a_test():
    rows = doc_rows()
    ids = [row[0] for row in rows]
    assert len(ids) == len(set(ids)), "row ids repeat"
    assert set(CASES) == {row[0] for row in RUN_HERE}, "a case without a row in docs/errors.md, or a row without its case"
    for ident, _, tests in rows:
        for test in tests.split("; "):
            path, _, name = test.partition("::")
            assert os.path.isfile(os.path.join(ROOT, path)), f"{ident}: {path} does not exist"
            source = open(os.path.join(ROOT, path), encoding="utf-8").read()
            function = re.split(r"[\[ ]", name)[0]  # drop a parametrisation and a remark
            assert f"def {function}(" in source, f"{ident}: {test} does not exist"
