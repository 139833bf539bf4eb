"""Student dropout control (--student_dropout): off makes training forwards deterministic."""

import json
import os

import pytest
import torch

from talas import cli
from talas.errors import ConfigError
from talas.models.encoder import Encoder, set_dropout

TEXTS = ["a man plays a guitar", "the cat sleeps", "stocks fell sharply today", "how do i reset my pin"]


def test_student_dropout_zero_makes_training_forwards_deterministic(tiny_bert):
    encoder = Encoder.load(str(tiny_bert), "mean", 32)
    encoder.train()
    features = encoder.tokenize(TEXTS)
    assert not torch.equal(encoder(features), encoder(features))  # the model's own dropout is on
    set_dropout(encoder.model, 0.0)
    assert torch.equal(encoder(features), encoder(features))
    with pytest.raises(ConfigError, match="student_dropout"):
        set_dropout(encoder.model, 1.5)


def test_dropout_flag_reaches_the_training_loop(tmp_path, monkeypatch, tiny_bert):
    """One step over one batch holding every row, no projection (same widths): only dropout can make the
    loss depend on the seed."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "texts.csv").write_text("text\n" + "\n".join(TEXTS * 3) + "\n")
    argv = ["train", "--method", "talas", "--train_data_path", "texts.csv", "--student_model_name", str(tiny_bert),
            "--teacher_model_name", str(tiny_bert), "--pooling_method", "mean", "--max_length", "32", "--device", "cpu", "--w_task", "0",
            "--w_kd", "1", "--student_pooling", "mean", "--batch_size", "12", "--max_steps", "1", "--log_steps", "1"]

    def first_loss(name, *extra):
        assert cli.main([*argv, "--save_dir", name, *extra]) == 0
        return json.loads(open(f"{name}/train_log.jsonl").readline())["loss"]

    off = first_loss("off1", "--student_dropout", "0", "--seed", "1")
    assert first_loss("off2", "--student_dropout", "0", "--seed", "2") == pytest.approx(off, rel=1e-5)
    assert first_loss("on2", "--seed", "2") != pytest.approx(off, rel=1e-3)
    assert cli.main([*argv, "--save_dir", "bad", "--student_dropout", "1"]) == 2


def test_no_dropout_with_contrastive_views_of_single_texts_is_refused_before_the_teacher(tmp_path, monkeypatch,
                                                                                       tiny_bert, tiny_qwen3, capsys):
    from test_train import refuse_teacher

    monkeypatch.chdir(tmp_path)
    (tmp_path / "texts.csv").write_text("text\n" + "\n".join(TEXTS) + "\n")
    refuse_teacher(monkeypatch, tiny_qwen3)  # loading the teacher (to build its cache) would fail the test
    argv = ["train", "--train_data_path", "texts.csv", "--student_model_name", str(tiny_bert), "--teacher_model_name",
            str(tiny_qwen3), "--w_kd", "1", "--w_task", "1", "--device", "cpu", "--save_dir", "run", "--max_length", "32"]
    assert cli.main([*argv, "--student_dropout", "0"]) == 2
    assert "views of a text identical" in capsys.readouterr().err
    assert cli.main([*argv, "--student_dropout", "1"]) == 2
    assert "must be in [0, 1)" in capsys.readouterr().err
    assert not os.path.exists("cache")
