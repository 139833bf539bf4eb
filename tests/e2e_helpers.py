"""Scaffolding shared by the end-to-end tests (test_cdm, test_dskd, test_emo, test_stella, test_token_e2e,
test_train): the text file a run trains on, the resume and export checks, the seed-style config modules.
Imported like tiny_models.py."""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent

# Mixed case, punctuation, an accent and an emoji: the two tokenizers split these differently.
SENTENCES = [
    "a man is playing a guitar", "a woman is slicing an onion", "the cat sits on the mat",
    "two dogs run across the field", "i feel happy and relaxed today", "my card payment was declined",
    "how do i reset my pin", "the stock market fell sharply", "children are playing in the park",
    "a plane is taking off", "The man plays guitar on stage!", "an onion is being cut, é 😀",
]


def write_texts(folder: Path, sentences=SENTENCES, name: str = "texts.csv", quote: bool = True) -> Path:
    """A one-column ``text`` CSV of ``sentences`` (each quoted unless ``quote`` is false)."""
    rows = (f'"{s}"' if quote else s for s in sentences)
    path = Path(folder) / name
    path.write_text("text\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def in_texts_dir(monkeypatch, folder: Path, sentences=SENTENCES) -> Path:
    """Make ``folder`` the working directory, with texts.csv of ``sentences`` in it (quoted); returns it."""
    monkeypatch.chdir(folder)
    write_texts(folder, sentences)
    return folder


def online_command(method: str, student, teacher, save_dir: str, *extra: str) -> list[str]:
    """The train command for a tiny run of ``method`` on texts.csv (4 epochs of 3 batches of 4) with the
    online teacher (its prompt, last-token pooling), on the CPU at a constant lr, a log record every step;
    then ``extra``, which may override any of it."""
    return ["train", "--method", method, "--train_data_path", "texts.csv", "--student_model_name", str(student),
            "--teacher_model_name", str(teacher), "--save_dir", save_dir, "--batch_size", "4", "--epochs", "4",
            "--learning_rate", "3e-3", "--max_length", "24", "--teacher_prompt", "Query: ",
            "--pooling_method", "last_token", "--log_steps", "1", "--device", "cpu",
            "--warmup_ratio", "0", "--lr_scheduler", "constant", *extra]


def check_resume(argv: list[str], resume_from: int, last_step: int, full: str = "full", resumed: str = "resumed") -> dict:
    """Copy ``full``'s checkpoint at step ``resume_from`` into ``resumed``, run ``argv`` (saving to
    ``resumed`` with ``--resume latest``) and check its state at ``last_step`` equals the uninterrupted
    run's, every tensor of the model; returns the uninterrupted run's training state."""
    from talas import cli

    os.makedirs(f"{resumed}/checkpoints")
    shutil.copytree(f"{full}/checkpoints/step-{resume_from}", f"{resumed}/checkpoints/step-{resume_from}")
    assert cli.main(argv) == 0
    full_state = torch.load(f"{full}/checkpoints/step-{last_step}/training_state.pt", weights_only=True)
    resumed_state = torch.load(f"{resumed}/checkpoints/step-{last_step}/training_state.pt", weights_only=True)
    assert full_state["model"].keys() == resumed_state["model"].keys()
    for name in full_state["model"]:
        torch.testing.assert_close(full_state["model"][name], resumed_state["model"][name], atol=1e-6, rtol=0)
    return full_state


def check_export(method, model_state: dict, sentences=SENTENCES, path: str = "full/model"):
    """Load ``model_state`` into ``method`` and check the exported model at ``path``, loaded back by
    sentence-transformers, gives the method's vectors; returns the loaded SentenceTransformer."""
    from sentence_transformers import SentenceTransformer

    method.load_state_dict(model_state)
    st = SentenceTransformer(path, device="cpu")
    got = torch.as_tensor(st.encode(sentences, convert_to_numpy=True))
    torch.testing.assert_close(got, method.embed(sentences), atol=1e-5, rtol=0)
    return st


def seed_config(name: str):
    """The seed-style module config/<name>.py at the repository root."""
    sys.path.insert(0, str(ROOT))
    try:
        return importlib.import_module(f"config.{name}")
    finally:
        sys.path.remove(str(ROOT))


def broken_copy(model: str, damage: str) -> None:
    """A copy of ``model`` in ./broken with one part damaged: "config", "weights" or (else) the tokenizer."""
    shutil.copytree(model, "broken", symlinks=False)
    if damage == "config":
        os.remove("broken/config.json")
    elif damage == "weights":
        for name in os.listdir("broken"):
            if name.endswith(".safetensors"):
                os.remove(os.path.join("broken", name))
    else:
        with open("broken/tokenizer.json", "w") as handle:
            handle.write("{not json")
