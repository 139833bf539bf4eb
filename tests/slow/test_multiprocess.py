"""Two processes under torchrun on CPU (gloo): the sharded cache build and DDP training through Accelerate.

The same code path runs on several GPUs; here the ranks are CPU processes, so CI can check it.
(`accelerate launch --cpu` starts one process only, hence torchrun.)
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from talas.cache import open_cache

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TEXTS = [f"sentence number {i} about {topic}" for i, topic in enumerate(["cats", "dogs", "rain", "music"] * 10)]


def train_argv(tiny_bert, tiny_qwen3, save_dir, cache):
    return ["--method", "talas", "--train_data_path", "texts.csv", "--student_model_name", str(tiny_bert),
            "--teacher_model_name", str(tiny_qwen3), "--student_pooling", "mean", "--max_length", "32",
            "--batch_size", "4", "--epochs", "1", "--w_task", "0", "--w_kd", "1", "--device", "cpu",
            "--cache_path", cache, "--cache_chunk_size", "8", "--save_dir", save_dir, "--log_steps", "1"]


@pytest.mark.slow
def test_two_cpu_processes_shard_the_cache_and_train(tmp_path, monkeypatch, tiny_bert, tiny_qwen3):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "texts.csv").write_text("text\n" + "\n".join(TEXTS) + "\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
              os.path.join(ROOT, "main.py")]
    run = subprocess.run([*launch, *train_argv(tiny_bert, tiny_qwen3, "ddp", "cache/ddp.safetensors")], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    single = subprocess.run([sys.executable, os.path.join(ROOT, "main.py"),
                             *train_argv(tiny_bert, tiny_qwen3, "one", "cache/one.safetensors")],
                            env=env, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]

    # Both ranks wrote their chunks into one file; it holds what one process computes.
    sharded, alone = open_cache("cache/ddp.safetensors"), open_cache("cache/one.safetensors")
    assert sharded.count == alone.count == len(TEXTS)
    np.testing.assert_allclose(np.asarray(sharded.vectors), np.asarray(alone.vectors), atol=1e-5)
    # Each rank embedded only its own chunks (40 texts in chunks of 8: rank 0 takes 0, 2, 4; rank 1 takes 1, 3).
    logs = run.stdout + run.stderr
    assert "rank 0/2: embedded chunks [0, 2, 4] (24 texts" in logs, logs[-3000:]
    assert "rank 1/2: embedded chunks [1, 3] (16 texts" in logs, logs[-3000:]
    # Each rank takes half the batches: 40 texts / (2 ranks x 4) = 5 optimiser steps.
    log = [json.loads(line) for line in open("ddp/train_log.jsonl")]
    assert log[-1]["step"] == 5 and all(np.isfinite(entry["loss"]) for entry in log)
    assert "5 per process (2 processes)" in run.stdout
    assert os.path.exists("ddp/model/modules.json")
    # Every rank's RNG is in the checkpoint, and the ranks were seeded apart (each draws its own dropout masks).
    import torch

    rng = [torch.load(f"ddp/checkpoints/step-5/rng-{rank}.pt", weights_only=True)["torch"] for rank in (0, 1)]
    assert not torch.equal(rng[0], rng[1])
