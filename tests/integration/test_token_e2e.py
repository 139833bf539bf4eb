"""End to end through the seed-style CLI: a toy token-level method (defined here) trains on the online
teacher's token states with span alignments (tiny Qwen3 teacher: byte BPE, EOS, left padding, a
prompt; tiny BERT student), its loss decreases, resume and export work as for TALAS, and the teacher
is in no checkpoint."""

import json
import os
from dataclasses import dataclass

import pytest
from e2e_helpers import check_export, check_resume, in_texts_dir, online_command
from torch import nn

from talas import cli
from talas.config import TrainConfig
from talas.methods import METHODS
from talas.methods.base import Method
from talas.models.encoder import Encoder
from talas.teacher.provision import TeacherNeeds


@dataclass
class ToyConfig(TrainConfig):
    pass


class ToyMethod(Method):
    """MSE between the projected group-averaged student states and the teacher's last-layer states."""

    name = "toy"
    config_class = ToyConfig

    def __init__(self, cfg, student, teacher_dim):
        super().__init__(cfg, student, teacher_dim)
        self.projection = nn.Linear(student.dim, teacher_dim)

    @classmethod
    def teacher_needs(cls, cfg):
        return TeacherNeeds(vectors="none", layers=(-1,), alignments=("span",))

    @classmethod
    def needs_pairs(cls, cfg):
        return False

    def forward(self, batch):
        out = self.student.forward_tokens(batch.features)
        groups = batch.alignments["span"]
        sg, tg = groups.student_groups, groups.teacher_groups
        # The collator's contract, checked on every real batch: pads are never in a group.
        assert not (sg * (1 - batch.features["attention_mask"][:, None, :])).any()
        assert not (tg * (1 - batch.teacher_features["attention_mask"][:, None, :])).any()
        s_count, t_count = sg.sum(-1, keepdim=True), tg.sum(-1, keepdim=True)
        keep = groups.group_mask & (s_count[..., 0] > 0) & (t_count[..., 0] > 0)
        s_mean = (sg @ out.tokens) / s_count.clamp(min=1)
        t_mean = (tg @ batch.teacher_hidden[0]) / t_count.clamp(min=1)
        loss = (self.projection(s_mean[keep]) - t_mean[keep]).pow(2).sum(-1).mean()
        return loss, {"loss": loss.detach(), "groups": keep.sum().float()}


@pytest.fixture
def toy(monkeypatch, tmp_path):
    monkeypatch.setitem(METHODS, "toy", ToyMethod)
    return in_texts_dir(monkeypatch, tmp_path)


def command(student, teacher, save_dir, *extra):
    return online_command("toy", student, teacher, save_dir, "--student_pooling", "mean", "--student_dropout", "0", *extra)


def test_toy_token_method_trains_resumes_exports_and_never_saves_the_teacher(toy, tiny_bert, tiny_qwen3, capsys):
    args = ("--save_steps", "1", "--save_total_limit", "0")
    assert cli.main(command(tiny_bert, tiny_qwen3, "full", *args)) == 0
    assert "Cache not found" not in capsys.readouterr().out and not os.path.exists("cache")
    log = [json.loads(line) for line in open("full/train_log.jsonl")]
    assert len(log) == 12 and all(r["groups"] > 0 for r in log)
    first, last = sum(r["loss"] for r in log[:3]), sum(r["loss"] for r in log[-3:])
    assert last < 0.7 * first, (first, last)

    # Resume from step 5 of 12 reproduces the uninterrupted run.
    full = check_resume(command(tiny_bert, tiny_qwen3, "resumed", *args, "--resume", "latest"), 5, 12)

    # The checkpoint holds the student and the projection, nothing of the teacher (a 48-wide Qwen3).
    student = Encoder.load(str(tiny_bert), "mean", 24)
    method = ToyMethod(ToyConfig(), student, 48)
    assert set(full["model"]) == set(method.state_dict())
    assert not any("q_norm" in k or "embed_tokens" in k for k in full["model"])
    trainable = sum(1 for name, p in method.named_parameters() if p.requires_grad and ".pooler." not in name)
    assert sum(len(g["params"]) for g in full["optimizer"]["param_groups"]) == trainable

    # The export is the trained student, as for TALAS.
    check_export(method, full["model"])
