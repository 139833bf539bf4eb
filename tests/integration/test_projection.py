"""The TALAS projection into the teacher's width is exported: the student's vectors then live in the
teacher's space (comparable with vectors the teacher made), which the loss shaped directly."""

import logging

import pytest
import torch
from sentence_transformers import SentenceTransformer
from tiny_models import CORPUS

from talas import cli
from talas.models.encoder import Encoder

HELD_BACK = ["a dog sleeps on the mat", "my pin was declined today", "a man is slicing a guitar", "children run to the plane"]


def train_argv(data, student, teacher, save_dir, *extra):
    return ["train", "--method", "talas", "--train_data_path", str(data), "--student_model_name", str(student),
            "--teacher_model_name", str(teacher), "--save_dir", str(save_dir), "--cache_path", "cache/c.safetensors",
            "--batch_size", "4", "--epochs", "30", "--learning_rate", "3e-3", "--max_length", "32", "--w_task", "0",
            "--w_kd", "1", "--student_pooling", "mean", "--student_dropout", "0", "--device", "cpu", *extra]


def mean_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a, b).mean().item()


@pytest.fixture
def texts_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "texts.csv"
    path.write_text("text\n" + "\n".join(sorted(set(CORPUS))) + "\n")
    return path


def test_exported_student_lives_in_the_teachers_space(texts_file, tiny_bert, tiny_qwen3):
    assert cli.main(train_argv(texts_file, tiny_bert, tiny_qwen3, "run")) == 0
    student = SentenceTransformer("run/model", device="cpu")
    assert student.get_embedding_dimension() == 48  # tiny BERT is 32-d, the tiny Qwen3 teacher 48-d
    teacher = Encoder.load(str(tiny_qwen3), "last_token", 32).encode(HELD_BACK)
    # The same student before training, followed by the projection as initialised in the run
    # (seed 42): the distillation, not the extra layer, must be what brings it close.
    untrained = Encoder.load(str(tiny_bert), "mean", 32).encode(HELD_BACK)
    torch.manual_seed(0)
    with torch.no_grad():
        untrained = torch.nn.Linear(32, 48)(untrained.clone())
    after = torch.as_tensor(student.encode(HELD_BACK))
    # Measured: ~0.48 after vs ~-0.1 before on these held-back texts (tiny random models, 10 training texts).
    assert mean_cosine(after, teacher) > 0.3
    assert mean_cosine(after, teacher) > mean_cosine(untrained, teacher) + 0.3


def test_projection_can_be_left_out(texts_file, tiny_bert, tiny_qwen3):
    assert cli.main(train_argv(texts_file, tiny_bert, tiny_qwen3, "run", "--export_projection", "false", "--epochs", "1")) == 0
    assert SentenceTransformer("run/model", device="cpu").get_embedding_dimension() == 32


def test_projection_trains_at_its_own_learning_rate(texts_file, tiny_bert, tiny_qwen3):
    # 6 steps, 3 of warm-up; step 5's checkpoint is part-way down the linear decay.
    argv = train_argv(texts_file, tiny_bert, tiny_qwen3, "run", "--epochs", "2", "--save_steps", "1",
                      "--learning_rate", "1e-4", "--projection_lr", "2e-2", "--warmup_ratio", "0.5")
    assert cli.main(argv) == 0
    state = torch.load("run/checkpoints/step-5/training_state.pt", weights_only=True)
    groups = state["optimizer"]["param_groups"]
    peaks = sorted({g["initial_lr"] for g in groups})
    assert peaks == [1e-4, 2e-2]
    # One schedule for all: after warm-up and part of the decay, every group is at the same fraction of its peak.
    fractions = {round(g["lr"] / g["initial_lr"], 9) for g in groups}
    assert len(fractions) == 1 and 0 < fractions.pop() < 1
    assert sum(len(g["params"]) for g in groups if g["initial_lr"] == 2e-2) == 2  # the projection's weight and bias


def test_contrastive_term_to_the_teacher_is_logged_and_distils_relations(texts_file, tiny_bert, tiny_qwen3):
    import json

    argv = train_argv(texts_file, tiny_bert, tiny_qwen3, "run", "--w_kd", "0", "--w_contrast", "1",
                      "--contrast_temperature", "0.1", "--epochs", "15",
                      "--projection_init", "random")  # a ridge start on 10 texts would leave the term nothing to do
    assert cli.main(argv) == 0
    log = [json.loads(line) for line in open("run/train_log.jsonl")]
    assert all("contrast" in row for row in log)
    assert log[-1]["contrast"] < log[0]["contrast"]
    # Against the same training without the teacher (the task loss alone, same steps and lr): on the
    # training texts (10 texts cannot teach tiny random models to generalise) the student's pairwise
    # similarities come to agree with the teacher's. The tiny models' vocabularies (and so every
    # absolute figure) change from session to session, the control keeps the comparison fair.
    control = train_argv(texts_file, tiny_bert, tiny_qwen3, "control", "--w_task", "1", "--w_kd", "0", "--epochs", "15",
                         "--student_dropout", "-1")  # the task loss needs dropout to tell the two views apart
    assert cli.main(control) == 0
    texts = sorted(set(CORPUS))
    teacher = torch.nn.functional.normalize(Encoder.load(str(tiny_qwen3), "last_token", 32).encode(texts), dim=-1)
    off = ~torch.eye(len(texts), dtype=torch.bool)

    def agreement(folder):  # correlation of the pairwise similarities with the teacher's
        vectors = torch.nn.functional.normalize(torch.as_tensor(SentenceTransformer(folder, device="cpu").encode(texts)), dim=-1)
        return torch.corrcoef(torch.stack([(vectors @ vectors.T)[off], (teacher @ teacher.T)[off]]))[0, 1].item()

    assert agreement("run/model") > agreement("control/model") + 0.05  # measured 0.45-0.47 vs 0.08-0.33


def test_ridge_fit_recovers_an_exact_linear_map_and_shrinks_with_alpha():
    from talas.models.projection import ridge_fit

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=generator)
    a, c = torch.randn(3, 5, generator=generator), torch.tensor([0.5, -1.0, 2.0])
    weight, bias = ridge_fit(x, x @ a.T + c, alpha=1e-9)
    assert torch.allclose(weight, a, atol=1e-5) and torch.allclose(bias, c, atol=1e-5)
    # λ = alpha·tr(XcᵀXc)/d: with these (whitened-ish) inputs a large alpha halves the map roughly as 1/(1+alpha).
    shrunk, _ = ridge_fit(x, x @ a.T + c, alpha=1.0)
    assert 0.3 < shrunk.norm() / a.norm() < 0.7


def first_kd(save_dir) -> float:
    import json

    return json.loads(open(f"{save_dir}/train_log.jsonl").readline())["kd"]


def test_ridge_initialised_projection_starts_closer_to_the_teacher(texts_file, tiny_bert, tiny_qwen3, capsys):
    common = ["--max_steps", "1", "--log_steps", "1", "--epochs", "1"]
    assert cli.main(train_argv(texts_file, tiny_bert, tiny_qwen3, "ridge", *common)) == 0
    assert "Projection initialised by ridge regression on 10 texts" in capsys.readouterr().out
    assert cli.main(train_argv(texts_file, tiny_bert, tiny_qwen3, "random", *common, "--projection_init", "random")) == 0
    # The first step's KD loss is measured before any update: the fit alone makes the difference.
    assert first_kd("ridge") < 0.5 * first_kd("random")


@pytest.mark.parametrize("direction", ["teacher_to_student", "student_to_teacher"])
@pytest.mark.parametrize("name", ["cdm", "emo"])
def test_ridge_start_of_a_token_state_projection(name, direction, tiny_bert, tiny_qwen3, caplog):
    # CDM's and EMO's P carry token states from one model's space into the other's; the ridge start fits it
    # between the teacher's mean last-layer states and the untrained student's mean states.
    from talas.methods import get_method
    from talas.models.projection import ridge_fit
    from talas.teacher.provision import Prepared, provide

    method_cls = get_method(name)
    texts = sorted(set(CORPUS))
    cfg = method_cls.config_class(method=name, student_model_name=str(tiny_bert), teacher_model_name=str(tiny_qwen3),
                                  device="cpu", max_length=32, projection_init="ridge", projection_init_texts=len(texts),
                                  projection=direction)
    student = Encoder.load(str(tiny_bert), "mean", 32)
    supply = provide(cfg, method_cls.teacher_needs(cfg), texts, texts, torch.device("cpu"))
    method = method_cls(cfg, student, supply.dim)
    caplog.set_level(logging.INFO, logger="talas")
    method.initialise(Prepared(texts, student, supply, torch.device("cpu")))
    lines = [r.getMessage() for r in caplog.records]
    x, y = Encoder.load(str(tiny_qwen3), "mean", 32).encode(texts), student.encode(texts)
    if direction == "student_to_teacher":
        x, y = y, x
    weight, bias = ridge_fit(x, y)
    torch.testing.assert_close(method.projection.weight, weight, atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(method.projection.bias, bias, atol=1e-4, rtol=1e-3)
    assert len(lines) == 1 and f"ridge regression on {len(texts)} texts" in lines[0]
    with torch.no_grad():
        assert torch.nn.functional.cosine_similarity(method.projection(x), y).mean() > 0.9


@pytest.mark.parametrize("name, term, extra", [("cdm", "cdm", ("--w_task", "0")), ("emo", "ot", ("--alpha", "1", "--w_ira", "0", "--ot_cost", "cosine"))])
def test_student_to_teacher_projection_trains_and_is_not_exported(name, term, extra, tiny_bert, tiny_qwen3, monkeypatch, tmp_path):
    # P: d_S → d_T compares the student's token states, carried, with the teacher's own; distillation
    # alone lowers that term, and the export is the student alone (its own width).
    import json

    from e2e_helpers import in_texts_dir, online_command

    in_texts_dir(monkeypatch, tmp_path)
    argv = online_command(name, tiny_bert, tiny_qwen3, "run", "--projection", "student_to_teacher", "--projection_init", "ridge",
                          "--student_dropout", "0", "--epochs", "8", *extra)
    assert cli.main(argv) == 0
    log = [json.loads(line) for line in open("run/train_log.jsonl")]
    first, last = sum(r[term] for r in log[:6]), sum(r[term] for r in log[-6:])
    assert last < 0.9 * first, (first, last)
    state = torch.load(sorted(__import__("glob").glob("run/checkpoints/step-*/training_state.pt"))[-1], weights_only=True)
    assert state["model"]["projection.weight"].shape == (48, 32)  # d_T × d_S
    assert SentenceTransformer("run/model", device="cpu").get_embedding_dimension() == 32
