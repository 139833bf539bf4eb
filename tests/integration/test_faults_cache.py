"""Fault injection on the teacher cache build: real processes, killed by SIGKILL at chosen points, then rerun.

A rerun (in this process, so the teacher forwards can be counted) must finish a file
byte-identical to an uninterrupted build and embed only the chunks that were not finished. Two
processes building one cache at once must leave one valid cache, each chunk embedded once (the
builder's per-rank lines name the chunks each process embedded).
"""

import logging
import os
import re
import signal
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from talas.cache import ensure_cache, open_cache
from talas.methods.talas import TalasConfig
from talas.models.encoder import Encoder

TEXTS = [f"sentence number {i} about {w}" for i, w in enumerate(["cats", "dogs", "the park", "a plane", "money"] * 8)]
CHUNKS = 5  # 40 texts in chunks of 8


def command(tiny_qwen3, folder):
    return [sys.executable, "-m", "talas.cli", "cache", "--train_data_path", str(folder / "texts.csv"),
            "--teacher_model_name", str(tiny_qwen3), "--max_length", "32", "--cache_chunk_size", "8",
            "--cache_batch_size", "4", "--device", "cpu", "--cache_path", str(folder / "cache" / "t.safetensors")]


def environment(fault=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("TALAS_FAULT", None)
    return {**env, "TALAS_FAULT": fault} if fault else env


def prepare(folder):
    folder.mkdir(exist_ok=True)
    (folder / "texts.csv").write_text("text\n" + "\n".join(TEXTS) + "\n")
    return folder


def embedded(output: str) -> list[list[int]]:
    """The chunk lists of every 'rank r/w: embedded chunks [...]' line."""
    return [[int(c) for c in found.split(",") if c.strip()] for found in re.findall(r"embedded chunks \[([\d, ]*)\]", output)]


@pytest.fixture
def one_thread():
    """The subprocesses run with OMP_NUM_THREADS=1; this process computes with the same kernels."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def in_process(tiny_qwen3, folder):
    cfg = replace(TalasConfig(), teacher_model_name=str(tiny_qwen3), max_length=32, cache_chunk_size=8, cache_batch_size=4,
                  device="cpu", cache_path=str(folder / "cache" / "t.safetensors"))
    return ensure_cache(cfg, TEXTS, TEXTS)[0]


@pytest.fixture
def reference(tiny_qwen3, tmp_path, one_thread):
    cache = in_process(tiny_qwen3, tmp_path / "reference")
    return open(cache.path, "rb").read()


@pytest.mark.parametrize("fault,remaining", [
    ("cache_chunk_done:1", [2, 3, 4]),   # after chunk 1 is recorded
    ("cache_chunk_write:2", [2, 3, 4]),  # halfway through writing chunk 2's rows
    ("cache_finalize", []),              # checksums in the header, before the rename
])
def test_killed_build_resumes_to_a_byte_identical_cache(tiny_qwen3, tmp_path, reference, monkeypatch, fault, remaining, caplog):
    folder = prepare(tmp_path / "killed")
    killed = subprocess.run(command(tiny_qwen3, folder), env=environment(fault), capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    final = folder / "cache" / "t.safetensors"
    assert not final.exists() and (folder / "cache" / "t.safetensors.partial").exists()

    texts_through_teacher = []
    original = Encoder.forward
    monkeypatch.setattr(Encoder, "forward", lambda self, f: texts_through_teacher.append(len(f["input_ids"])) or original(self, f))
    caplog.set_level(logging.INFO, logger="talas")
    in_process(tiny_qwen3, folder)
    messages = caplog.messages
    assert sum(texts_through_teacher) == 8 * len(remaining)  # only the unfinished chunks went through the teacher
    assert embedded("\n".join(messages)) == [remaining]
    assert f"{CHUNKS - len(remaining)}/{CHUNKS} chunks already done" in "\n".join(messages)
    assert final.read_bytes() == reference
    assert sorted(p.name for p in (folder / "cache").iterdir() if not p.name.endswith(".lock")) == ["t.safetensors"]


def test_two_concurrent_builds_of_one_cache_leave_one_valid_cache_built_once(tiny_qwen3, tmp_path, reference):
    folder = prepare(tmp_path)
    procs = [subprocess.Popen(command(tiny_qwen3, folder), env=environment(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outputs]
    chunks = [c for out, _ in outputs for line in embedded(out) for c in line]
    assert sorted(chunks) == list(range(CHUNKS))  # every chunk embedded exactly once, by one of them
    assert all("Teacher cache ready" in out for out, _ in outputs)
    assert (folder / "cache" / "t.safetensors").read_bytes() == reference
    assert open_cache(str(folder / "cache" / "t.safetensors")).verify() == []
