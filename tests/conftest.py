"""Shared fixtures. Tests are grouped by layer: unit/ (library functions called directly, tiny
tensors and tiny models), integration/ (commands end to end on tiny random models), slow/ (real
pretrained models, several processes). Shared helpers (tiny_models.py, e2e_helpers.py) sit here."""

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
# The helpers, and test modules that share constants across layers (e.g. a cache test's texts), import
# by plain name from any layer's folder.
for folder in (HERE, HERE / "unit", HERE / "integration", HERE / "slow"):
    sys.path.insert(0, str(folder))

from tiny_models import build_bert, build_qwen3  # noqa: E402


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return build_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def tiny_qwen3(tmp_path_factory) -> Path:
    return build_qwen3(tmp_path_factory.mktemp("tiny_qwen3"))


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """A fresh folder as the working directory: runs write their relative paths (cache/, run folders) there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
