"""A resumed run continues from its checkpoint (TALAS and Stella), shown by what it does, not only by
where it ends: it says where it resumed, its log starts after the checkpoint's step, it writes no
earlier checkpoint, and a weight changed inside the checkpoint changes the exported student.

(Equality with an uninterrupted run alone proves nothing: a run that ignores --resume and restarts
with the same seed ends with the same weights.)
"""

import json
import os
import re
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_stella import stella_command  # noqa: E402
from test_train import seed_command, write_nli  # noqa: E402

from talas import cli

SAVE_ALL = ("--save_steps", "1", "--save_total_limit", "0", "--log_steps", "1")


@pytest.fixture
def cached(workdir, tiny_qwen3):
    """NLI data and its Stella teacher cache (cache/c.safetensors, as stella_command expects)."""
    data = write_nli(workdir / "nli.csv")
    assert cli.main(["cache", "--method", "stella", "--train_data_path", str(data), "--teacher_model_name", str(tiny_qwen3),
                     "--max_length", "32", "--cache_path", "cache/c.safetensors", "--device", "cpu"]) == 0
    return data


def perturb_checkpoint(folder: str) -> str:
    """Add 0.5 to one student weight stored in the checkpoint ``folder``; return the tensor's name."""
    state_file = os.path.join(folder, "training_state.pt")
    if os.path.isfile(state_file):
        state = torch.load(state_file, weights_only=True)
        weights = state["model"]
    else:  # an Accelerate-style checkpoint keeps the weights in a safetensors file
        state_file = next(os.path.join(folder, f) for f in sorted(os.listdir(folder)) if f.endswith(".safetensors"))
        weights = state = load_file(state_file)
    name = next(k for k in weights if "encoder.layer.0.attention.self.query.weight" in k)
    weights[name] += 0.5
    if state_file.endswith(".pt"):
        torch.save(state, state_file)
    else:
        save_file(state, state_file)
    return name


def exported(save_dir: str) -> dict[str, torch.Tensor]:
    """The exported student's transformer weights (a sentence-transformers folder keeps them at its root)."""
    return load_file(os.path.join(save_dir, "model", "model.safetensors"))


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def log_steps(save_dir: str) -> list:
    return [(r.get("stage"), r["step"]) for r in map(json.loads, open(os.path.join(save_dir, "train_log.jsonl")))]


def test_talas_resume_continues_from_the_checkpoint(workdir, tiny_bert, tiny_qwen3, capsys):
    data = write_nli(workdir / "nli.csv")
    args = (*SAVE_ALL, "--cache_path", "cache/c.safetensors")
    assert cli.main(seed_command(data, tiny_bert, tiny_qwen3, "full", *args)) == 0
    assert log_steps("full") == [(None, s) for s in range(1, 7)]
    capsys.readouterr()

    # "Killed" after step 2 of 6: a run folder holding only that checkpoint.
    for name in ("resumed", "perturbed"):
        os.makedirs(f"{name}/checkpoints")
        shutil.copytree("full/checkpoints/step-2", f"{name}/checkpoints/step-2")
    before = open("resumed/checkpoints/step-2/training_state.pt", "rb").read()
    assert cli.main(seed_command(data, tiny_bert, tiny_qwen3, "resumed", *args, "--resume", "latest")) == 0
    out = capsys.readouterr().out
    assert re.search(r"Resumed from \S*resumed/checkpoints/step-2\b.*step 2", out), out
    assert log_steps("resumed") == [(None, s) for s in range(3, 7)]  # nothing logged for steps 1-2
    assert sorted(os.listdir("resumed/checkpoints")) == [f"step-{s}" for s in range(2, 7)]  # no step-1 written
    assert open("resumed/checkpoints/step-2/training_state.pt", "rb").read() == before  # nor step-2 rewritten
    assert max_difference(exported("full"), exported("resumed")) <= 1e-6

    # The checkpoint's weights are what the run continues from: change one, and the result changes.
    name = perturb_checkpoint("perturbed/checkpoints/step-2")
    assert cli.main(seed_command(data, tiny_bert, tiny_qwen3, "perturbed", *args, "--resume", "latest")) == 0
    short = name.removeprefix("student.").removeprefix("model.")
    diff = (exported("perturbed")[short] - exported("full")[short]).abs().max().item()
    assert diff > 0.3, diff  # four AdamW steps at lr 2e-5 move a weight by ~1e-4, not by the 0.5 we added


def test_stella_resume_mid_stage_continues_from_the_checkpoint(cached, tiny_bert, tiny_qwen3, capsys):
    assert cli.main(stella_command(cached, tiny_bert, tiny_qwen3, "full", *SAVE_ALL)) == 0
    full_log = log_steps("full")
    assert full_log == [(stage, s) for stage in ("stage1", "stage2", "stage3") for s in (1, 2)]
    capsys.readouterr()
    # "Killed" after step 1 of stage 2: stage 1's checkpoints and stage2/step-1 survive.
    for name in ("resumed", "perturbed"):
        os.makedirs(f"{name}/checkpoints/stage2")
        shutil.copytree("full/checkpoints/stage1", f"{name}/checkpoints/stage1")
        shutil.copytree("full/checkpoints/stage2/step-1", f"{name}/checkpoints/stage2/step-1")
    assert cli.main(stella_command(cached, tiny_bert, tiny_qwen3, "resumed", *SAVE_ALL, "--resume", "latest")) == 0
    out = capsys.readouterr().out
    assert re.search(r"Resumed from \S*resumed/checkpoints/stage2/step-1\b.*stage2.*step 1", out), out
    assert "Stage 1/3" not in out  # stage 1 is finished: not run again
    assert log_steps("resumed") == full_log[3:]
    assert sorted(os.listdir("resumed/checkpoints/stage2")) == ["step-1", "step-2"]
    assert sorted(os.listdir("resumed/checkpoints/stage3")) == ["step-1", "step-2"]
    assert max_difference(exported("full"), exported("resumed")) <= 1e-6

    name = perturb_checkpoint("perturbed/checkpoints/stage2/step-1")
    assert cli.main(stella_command(cached, tiny_bert, tiny_qwen3, "perturbed", *SAVE_ALL, "--resume", "latest")) == 0
    short = name.removeprefix("student.").removeprefix("model.")
    assert (exported("perturbed")[short] - exported("full")[short]).abs().max().item() > 0.3


def test_stella_reexport_resumes_without_a_training_step(cached, tiny_bert, tiny_qwen3, capsys):
    """--resume at the last step of the last stage with --export_dim: the checkpoint is exported as is."""
    assert cli.main(stella_command(cached, tiny_bert, tiny_qwen3, "run", "--save_steps", "2")) == 0
    os.makedirs("copy/checkpoints/stage3")
    shutil.copytree("run/checkpoints/stage3/step-2", "copy/checkpoints/stage3/step-2")
    name = perturb_checkpoint("copy/checkpoints/stage3/step-2")
    capsys.readouterr()
    argv = stella_command(cached, tiny_bert, tiny_qwen3, "run16", "--resume", "copy/checkpoints/stage3/step-2",
                          "--export_dim", "16")
    assert cli.main(argv) == 0
    assert "Resumed from copy/checkpoints/stage3/step-2" in capsys.readouterr().out
    assert not os.path.exists("run16/checkpoints")  # no stage ran, so none saved
    assert not os.path.exists("run16/train_log.jsonl") or not open("run16/train_log.jsonl").read()
    short = name.removeprefix("student.").removeprefix("model.")
    # exactly the checkpoint's weights, perturbation included: no step was taken
    assert torch.equal(exported("run16")[short], exported("run")[short] + 0.5)
    others = {k: v for k, v in exported("run16").items() if k != short}
    assert max_difference(others, {k: v for k, v in exported("run").items() if k != short}) == 0.0
