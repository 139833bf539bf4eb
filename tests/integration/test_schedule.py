"""The optimiser schedule as a run applies it: learning rate per step (warm-up, then cosine, linear or
constant) read from train_log.jsonl, and gradient accumulation equal to the larger batch."""

import json
import math
import os

import pytest
from safetensors.torch import load_file
from test_train import seed_command, write_nli  # noqa: E402

from talas import cli

PEAK = 1e-3


def expected_lr(kind: str, step: int, warmup: int = 2, total: int = 10) -> float:
    """The rate logged after optimiser step ``step`` (1-based), i.e. the one the next step uses:
    linear warm-up to the peak over ``warmup`` steps, then decay to 0 at ``total`` (or none)."""
    if step < warmup:
        return PEAK * (step + 1) / (warmup + 1)
    progress = (step - warmup) / (total - warmup)
    decay = {"cosine": 0.5 * (1 + math.cos(math.pi * progress)), "linear": 1 - progress, "constant": 1.0}[kind]
    return PEAK * decay


@pytest.mark.parametrize("kind", ["cosine", "linear", "constant"])
def test_learning_rate_per_step(workdir, tiny_bert, kind):
    data = write_nli(workdir / "nli.csv")
    # Student-only (no teacher needed): 12 pairs at batch 2, 10 steps, 20 % warm-up = 2 steps.
    argv = seed_command(data, tiny_bert, "unused-teacher", "run", "--w_kd", "0", "--batch_size", "2", "--max_steps", "10",
                        "--warmup_ratio", "0.2", "--learning_rate", str(PEAK), "--lr_scheduler", kind, "--log_steps", "1")
    assert cli.main(argv) == 0
    lrs = {r["step"]: r["lr"] for r in map(json.loads, open("run/train_log.jsonl"))}
    assert sorted(lrs) == list(range(1, 11))
    for step in (1, 2, 4, 6, 9, 10):
        assert lrs[step] == pytest.approx(expected_lr(kind, step), rel=1e-9, abs=1e-15), (step, lrs)
    # spot values worked out by hand, so that the formula above is not the only witness
    assert lrs[1] == pytest.approx(PEAK * 2 / 3) and lrs[2] == pytest.approx(PEAK)
    assert lrs[6] == pytest.approx(PEAK * {"cosine": 0.5, "linear": 0.5, "constant": 1.0}[kind])


def test_accumulating_two_batches_of_2_equals_one_batch_of_4(workdir, tiny_bert, tiny_qwen3):
    """Pure distillation (a per-text mean, unlike in-batch InfoNCE) with dropout off: the gradient of a batch
    of 4 is the mean of two batches of 2, so the weights after each optimiser step agree to rounding."""
    texts = [f"sentence {i} about {w}" for i, w in enumerate(["cats", "dogs", "rain", "money"] * 4)]
    (workdir / "texts.csv").write_text("text\n" + "\n".join(texts) + "\n")
    common = ["--w_task", "0", "--w_kd", "1", "--student_dropout", "0", "--group_by_length", "false", "--epochs", "1",
              "--learning_rate", "1e-3", "--cache_path", "cache/c.safetensors", "--log_steps", "1"]

    def run(name, *extra):
        argv = seed_command(workdir / "texts.csv", tiny_bert, tiny_qwen3, name, *common, *extra)
        assert cli.main(argv) == 0
        steps = [r["step"] for r in map(json.loads, open(f"{name}/train_log.jsonl"))]
        return steps, load_file(f"{name}/model/model.safetensors")

    steps4, big = run("b4", "--batch_size", "4")
    steps2, accumulated = run("b2x2", "--batch_size", "2", "--grad_accum_steps", "2")
    steps1, plain = run("b2", "--batch_size", "2")
    assert steps4 == steps2 == [1, 2, 3, 4] and steps1[-1] == 8
    initial = load_file(next(os.path.join(tiny_bert, f) for f in os.listdir(tiny_bert) if f.endswith(".safetensors")))
    moved = max((big[k] - initial[k]).abs().max().item() for k in big if k in initial)
    assert moved > 1e-3  # the runs trained (lr 1e-3, 4 steps)
    assert max((big[k] - accumulated[k]).abs().max().item() for k in big) <= 1e-6
    assert max((big[k] - plain[k]).abs().max().item() for k in big) > 1e-4  # the comparison can tell runs apart
