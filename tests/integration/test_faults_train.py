"""Fault injection on training runs (tiny models): kill -9 at several points, then --resume latest ends
with the uninterrupted run's weights; a full disk during a checkpoint write and a NaN loss stop with one
message and leave nothing a later run takes as valid. Faults are placed with TALAS_FAULT (talas/faults.py)."""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from test_train import seed_command, write_nli

from talas import cli
from talas.train.checkpoint import list_checkpoints

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# 12 examples, batch 4, 2 epochs: 6 optimiser steps, a checkpoint after each, the newest 2 kept.
ARGS = ("--cache_path", "cache/c.safetensors", "--save_steps", "1", "--save_total_limit", "2", "--log_steps", "1")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_bert, tiny_qwen3):
    """An uninterrupted run's exported weights (its folder also holds the data and cache to reuse)."""
    folder = tmp_path_factory.mktemp("reference")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        write_nli(folder / "nli.csv")
        assert cli.main(seed_command(folder / "nli.csv", tiny_bert, tiny_qwen3, "full", *ARGS)) == 0
    finally:
        os.chdir(cwd)
    return folder, load_file(str(folder / "full/model/model.safetensors"))


@pytest.fixture
def workdir(workdir, reference, monkeypatch):  # conftest's, sharing the reference run's cache
    folder, _ = reference
    os.symlink(folder / "cache", workdir / "cache")  # the cache is not what these tests break
    monkeypatch.delenv("TALAS_FAULT", raising=False)
    return workdir


def killed_run(argv, fault):
    env = {**os.environ, "TALAS_FAULT": fault, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), *argv[1:]], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]


def same_weights(a, b):
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6


@pytest.mark.parametrize("fault,resumed_from,leftover", [
    ("train_step:3", "step-2", None),           # between steps: step 3 done, its checkpoint not written
    ("checkpoint:4", "step-3", "step-4.tmp"),   # inside a checkpoint write: state file written, record not
    ("train_step:6", "step-5", None),           # after the last step, before its checkpoint and the export
])
def test_killed_run_resumes_to_the_uninterrupted_weights(reference, workdir, tiny_bert, tiny_qwen3, capsys, fault, resumed_from, leftover):
    data = write_nli(workdir / "nli.csv")
    argv = seed_command(data, tiny_bert, tiny_qwen3, "run", *ARGS)
    killed_run(argv, fault)
    assert not os.path.exists("run/model")
    names = sorted(os.listdir("run/checkpoints"))
    assert [os.path.basename(c.folder) for c in list_checkpoints("run")][-1] == resumed_from
    if leftover:
        assert leftover in names  # what the kill left: present, but never taken as a checkpoint
    # A fresh run is refused (the folder holds this run's checkpoints); --resume latest continues it.
    assert cli.main(argv) == 2
    assert cli.main([*argv, "--resume", "latest"]) == 0
    assert f"Resumed from run/checkpoints/{resumed_from}" in capsys.readouterr().out
    assert same_weights(load_file("run/model/model.safetensors"), reference[1])


def test_full_disk_during_a_checkpoint_write(reference, workdir, tiny_bert, tiny_qwen3, capsys, monkeypatch):
    data = write_nli(workdir / "nli.csv")
    argv = seed_command(data, tiny_bert, tiny_qwen3, "run", *ARGS)
    monkeypatch.setenv("TALAS_FAULT", "checkpoint_enospc:3")
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert ("error: Cannot write checkpoint run/checkpoints/step-3: No space left on device. Nothing of it is kept; the last "
            "complete checkpoint is run/checkpoints/step-2. Free space under run/checkpoints/ (or lower --save_total_limit), "
            "then continue with --resume latest.") in err and "Traceback" not in err
    assert sorted(os.listdir("run/checkpoints")) == ["step-1", "step-2"]  # no step-3, no step-3.tmp
    assert not os.path.exists("run/model")
    monkeypatch.delenv("TALAS_FAULT")
    assert cli.main([*argv, "--resume", "latest"]) == 0
    assert same_weights(load_file("run/model/model.safetensors"), reference[1])


def test_nan_loss_stops_keeps_the_last_good_checkpoint_and_exports_nothing(workdir, tiny_bert, tiny_qwen3, capsys, monkeypatch):
    data = write_nli(workdir / "nli.csv")
    monkeypatch.setenv("TALAS_FAULT", "nan_loss:3")
    assert cli.main(seed_command(data, tiny_bert, tiny_qwen3, "run", *ARGS)) == 2
    err = capsys.readouterr().err
    assert "error: Training stopped at step 3: loss nan, gradient norm nan." in err
    assert "No weight took this step; the last checkpoint, run/checkpoints/step-2, is kept" in err and "Traceback" not in err
    assert not os.path.exists("run/model")
    state = torch.load("run/checkpoints/step-2/training_state.pt", weights_only=True)
    assert all(torch.isfinite(t).all() for t in state["model"].values())
    assert [json.loads(line)["step"] for line in open("run/train_log.jsonl")] == [1, 2]  # step 3 never happened


def test_diverging_learning_rate_never_exports_nan_weights_and_keeps_the_previous_model(workdir, tiny_bert, tiny_qwen3, capsys):
    data = write_nli(workdir / "nli.csv")
    assert cli.main(seed_command(data, tiny_bert, tiny_qwen3, "run", *ARGS, "--max_steps", "1")) == 0
    before = load_file("run/model/model.safetensors")
    capsys.readouterr()
    argv = seed_command(data, tiny_bert, tiny_qwen3, "run", *ARGS, "--learning_rate", "1e30", "--overwrite")
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "error: Training stopped at step 2: loss nan, gradient norm nan. Likely causes: --learning_rate 1e+30 too high" in err
    # nothing exported: model/ is the earlier run's (moved aside by --overwrite, untouched)
    assert not os.path.exists("run/model")
    (stamp,) = os.listdir("run/replaced")
    assert same_weights(load_file(f"run/replaced/{stamp}/model/model.safetensors"), before)
