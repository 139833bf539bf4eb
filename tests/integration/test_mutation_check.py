"""scripts/mutation_check.py itself: its list does not rot, and a surviving or stale mutation fails the check."""

import importlib.util
import os
import re
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
spec = importlib.util.spec_from_file_location("mutation_check", os.path.join(ROOT, "scripts", "mutation_check.py"))
check = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = check  # dataclasses look their module up there
spec.loader.exec_module(check)


@pytest.mark.parametrize("mutation", check.MUTATIONS, ids=lambda m: m.name)
def test_every_mutation_applies_and_names_existing_tests(mutation):
    assert check.check_edit(mutation) is None
    assert mutation.tests and mutation.claim
    for node in mutation.tests:
        path, name = node.split("::")
        source = open(os.path.join(ROOT, path), encoding="utf-8").read()
        assert re.search(rf"^def {re.escape(name.split('[')[0])}\(", source, re.M), node


def test_a_surviving_or_stale_mutation_fails_the_check(monkeypatch, capsys):
    test = ("tests/unit/test_tables.py::test_jsonl_strings_may_hold_unicode_line_separators",)
    harmless = check.Mutation("harmless", "nothing", "talas/data/tables.py", "def json_text(", "def json_text(", test)
    monkeypatch.setattr(check, "MUTATIONS", [harmless])
    assert check.main(["--skip_baseline"]) == 1
    assert "| survived |" in capsys.readouterr().out
    stale = check.Mutation("stale", "nothing", "talas/data/tables.py", "text no longer in the file", "x", test)
    monkeypatch.setattr(check, "MUTATIONS", [stale])
    assert check.main([]) == 1
    assert "old text found 0 times in talas/data/tables.py" in capsys.readouterr().err
    assert check.main(["--only", "nope"]) == 2
