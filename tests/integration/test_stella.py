"""Stella: its three losses on hand-computed values, the blockwise/subsampled ranking loss against
the exact definition, every valid width list without NaN, clear errors, and three stages end to end
from an existing cache (teacher never loaded) with export (resume: tests/integration/test_resume.py)."""

import json
import math
import os

import pytest
import torch
from e2e_helpers import seed_config  # noqa: E402
from test_train import SENTENCES, refuse_teacher, write_nli  # noqa: E402
from tiny_models import build_qwen3  # noqa: E402

from talas import cli
from talas.data.batch import Batch
from talas.losses.vectors import cosine_distance, relative_similarity_loss, similarity_mse
from talas.methods.stella import StellaConfig, StellaMethod
from talas.teacher.provision import distinct_rows


def unit(degrees):
    return [math.cos(math.radians(degrees)), math.sin(math.radians(degrees))]


# Teacher at 0°, 60°, 90° and student at 0°, 90°, 45° (2-d unit vectors):
# pair similarities (01, 02, 12): teacher 0.5, 0, √3/2; student 0, √2/2, √2/2.
TEACHER = torch.tensor([unit(0), unit(60), unit(90)])
STUDENT = torch.tensor([unit(0), unit(90), unit(45)])
R2, R3 = math.sqrt(2) / 2, math.sqrt(3) / 2


def exact_resim(student, teacher, margin):
    """The definition, materialising every (p, q): mean over t_p > t_q of relu(s_q - s_p + margin)."""
    s = torch.nn.functional.normalize(student, dim=-1)
    t = torch.nn.functional.normalize(teacher, dim=-1)
    i, j = torch.triu_indices(len(s), len(s), offset=1)
    sp, tp = (s @ s.T)[i, j], (t @ t.T)[i, j]
    hinge = torch.relu(sp.unsqueeze(0) - sp.unsqueeze(1) + margin)  # [p, q] = s_q - s_p + margin
    ordered = tp.unsqueeze(1) > tp.unsqueeze(0)
    return hinge[ordered].mean() if ordered.any() else hinge.sum() * 0


def test_cosine_loss_known_value():
    expected = (0 + (1 - R3) + (1 - R2)) / 3  # angle gaps 0°, 30°, 45°
    assert cosine_distance(STUDENT, TEACHER).item() == pytest.approx(expected, rel=1e-6)


def test_similarity_mse_known_value():
    # off-diagonal gaps (01, 02, 12), each twice in the 3x3 matrix; the diagonals agree (1 = 1)
    expected = 2 * ((0 - 0.5) ** 2 + (R2 - 0) ** 2 + (R2 - R3) ** 2) / 9
    assert similarity_mse(STUDENT, TEACHER).item() == pytest.approx(expected, rel=1e-5)
    # the widths may differ: a 1-d prefix of the student against the 2-d teacher
    assert similarity_mse(torch.ones(3, 1), TEACHER).item() == pytest.approx(2 * (0.5**2 + 1 + (1 - R3) ** 2) / 9, rel=1e-5)


def test_relative_similarity_known_value():
    # teacher order 12 > 01 > 02 gives (p, q) = (12, 01), (12, 02), (01, 02) with hinges
    # max(0, 0 - √2/2 + m) = 0, max(0, √2/2 - √2/2 + m) = m, max(0, √2/2 - 0 + m) = √2/2 + m
    m = 0.015
    expected = (0 + m + (R2 + m)) / 3
    assert relative_similarity_loss(STUDENT, TEACHER, m).item() == pytest.approx(expected, rel=1e-5)
    assert relative_similarity_loss(TEACHER, TEACHER, m).item() == 0.0  # the teacher's own order, gaps > m


@pytest.mark.parametrize("b,chunk", [(5, 1), (7, 13), (9, 1 << 24), (12, 100)])
def test_blockwise_ranking_loss_equals_the_exact_definition(b, chunk):
    torch.manual_seed(b)
    student = torch.randn(b, 6, requires_grad=True)
    teacher = torch.randn(b, 10)
    teacher[1] = teacher[0]  # duplicate text: tied teacher similarities must be left out
    got = relative_similarity_loss(student, teacher, 0.1, chunk_elements=chunk)
    (grad_got,) = torch.autograd.grad(got, student)
    want = exact_resim(student, teacher, 0.1)
    (grad_want,) = torch.autograd.grad(want, student)
    assert got.item() == pytest.approx(want.item(), rel=1e-5, abs=1e-7)
    assert torch.allclose(grad_got, grad_want, atol=1e-6)
    # a cap above the number of pairs changes nothing
    assert relative_similarity_loss(student, teacher, 0.1, max_pairs=b * b).item() == pytest.approx(want.item(), rel=1e-5)


def test_subsampled_ranking_loss_is_the_definition_on_a_uniform_subset_of_pairs():
    torch.manual_seed(0)
    student, teacher = torch.randn(20, 8), torch.randn(20, 8)  # 190 pairs
    torch.manual_seed(123)
    got = relative_similarity_loss(student, teacher, 0.015, max_pairs=50)
    torch.manual_seed(123)
    keep = torch.randperm(190)[:50]
    s, t = (torch.nn.functional.normalize(x, dim=-1) for x in (student, teacher))
    i, j = torch.triu_indices(20, 20, offset=1)
    sp, tp = (s @ s.T)[i, j][keep], (t @ t.T)[i, j][keep]
    ordered = tp.unsqueeze(1) > tp.unsqueeze(0)
    want = torch.relu(sp.unsqueeze(0) - sp.unsqueeze(1) + 0.015)[ordered].mean()
    assert got.item() == pytest.approx(want.item(), rel=1e-5)


def test_ranking_loss_at_batch_128_keeps_nothing_quadratic_in_pairs_for_backward():
    # 128 distinct texts: P = 8128 pairs, P² = 6.6e7 cells. Autograd must keep only [B, B] / [P]
    # tensors (the naive form keeps several P² ones: > 1 GB); blocks bound the transient memory.
    saved = []

    def pack(tensor):
        saved.append(tensor.numel())
        return tensor

    student = torch.randn(128, 32, requires_grad=True)
    teacher = torch.randn(128, 64)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = relative_similarity_loss(student, teacher, 0.015, chunk_elements=1 << 22)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(student.grad).all()
    assert max(saved) <= 128 * 128


def test_ranking_loss_degenerate_batches_are_zero_not_nan():
    for b in (0, 1, 2):
        x = torch.randn(b, 4, requires_grad=True)
        loss = relative_similarity_loss(x, torch.randn(b, 4))
        assert loss.item() == 0.0
    same = torch.ones(5, 3)  # all teacher similarities tie: nothing to rank
    x = torch.randn(5, 3, requires_grad=True)
    loss = relative_similarity_loss(x, same)
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(x.grad).all()


def test_distinct_rows_keeps_the_first_copy_of_each_text_with_a_teacher_vector():
    ids = torch.tensor([4, 2, 4, 7, 2, 9])
    mask = torch.tensor([True, True, True, True, True, False])
    assert distinct_rows(ids, mask).tolist() == [0, 1, 3]


def make_method(tiny_bert, dims, w_task=0.0, teacher_dim=48):
    from talas.models.encoder import Encoder

    cfg = StellaConfig(student_model_name=str(tiny_bert), max_length=32, matryoshka_dims=dims, w_task=w_task)
    return StellaMethod(cfg, Encoder.load(str(tiny_bert), "mean", 32), teacher_dim)


def make_batch(method, texts, size, teacher):
    ids = {t: i for i, t in enumerate(dict.fromkeys(texts))}
    return Batch(texts, features=method.student.tokenize(texts), size=size, text_ids=torch.tensor([ids[t] for t in texts]),
                 teacher_vectors=teacher, teacher_mask=torch.ones(len(texts), dtype=torch.bool))


@pytest.mark.parametrize("dims", [[48], [1], [48, 1], [7, 3, 48], [16], [48, 24, 12, 6, 3, 2, 1]])
@pytest.mark.parametrize("case", ["pairs", "one_text", "tied_teacher"])
def test_no_nan_with_any_valid_width_list(tiny_bert, dims, case):
    torch.manual_seed(0)
    method = make_method(tiny_bert, dims, w_task=0.5 if case == "pairs" else 0.0)
    method.start_stage(method.stages()[2])  # stage 3: every width
    if case == "pairs":
        texts = SENTENCES[:4] + SENTENCES[4:8]
        teacher = torch.randn(8, 48)
    elif case == "one_text":
        texts, teacher = SENTENCES[:1] * 2, torch.randn(1, 48).repeat(2, 1)
    else:
        texts, teacher = SENTENCES[:6], torch.ones(6, 48)
    loss, metrics = method(make_batch(method, texts, len(texts) // 2, teacher))
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(v) for v in metrics.values())
    assert all(torch.isfinite(p.grad).all() for p in method.parameters() if p.grad is not None)
    assert method.fc.weight.grad is not None
    assert ("cos" in metrics) == (48 in dims)  # L_cos only at the teacher's width
    assert ("task" in metrics) == (case == "pairs")
    assert all(not v.requires_grad for v in metrics.values())


def test_stages_train_what_was_published(tiny_bert):
    method = make_method(tiny_bert, [48, 16])
    method.cfg.unfreeze_layers = 1
    stage1, stage2, stage3 = method.stages()
    method.start_stage(stage1)
    assert {n for n, p in method.named_parameters() if p.requires_grad} == {"fc.weight", "fc.bias"}
    assert method.dims == [48]
    method.start_stage(stage2)
    trainable = {n.split(".")[0] if n.startswith("fc") else ".".join(n.split(".")[:5]) for n, p in method.named_parameters() if p.requires_grad}
    assert trainable == {"fc", "student.model.encoder.layer.1"}
    assert (stage1.learning_rate, stage2.learning_rate) == (1e-4, 8e-5)
    method.start_stage(stage3)
    assert method.dims == [48, 16]


# ---- end to end (CLI) -------------------------------------------------------------------------

def stella_command(data, student, teacher, save_dir, *extra):
    return ["train", "--method", "stella", "--train_data_path", str(data), "--student_model_name", str(student),
            "--teacher_model_name", str(teacher), "--save_dir", str(save_dir), "--batch_size", "4", "--max_length", "32",
            "--device", "cpu", "--cache_path", "cache/c.safetensors", "--matryoshka_dims", "48,16,4",
            "--stage1_steps", "2", "--stage2_steps", "2", "--stage3_steps", "2", *extra]


@pytest.fixture
def cached(tmp_path, monkeypatch, tiny_bert, tiny_qwen3):
    """A working dir with NLI data and a teacher cache built by `talas cache`; the teacher then refuses to load."""
    monkeypatch.chdir(tmp_path)
    data = write_nli(tmp_path / "nli.csv")
    assert cli.main(["cache", "--method", "stella", "--train_data_path", str(data), "--teacher_model_name", str(tiny_qwen3),
                     "--max_length", "32", "--cache_path", "cache/c.safetensors", "--device", "cpu"]) == 0
    refuse_teacher(monkeypatch, tiny_qwen3)
    return data


def test_three_stages_from_the_cache_then_export(cached, tiny_bert, tiny_qwen3, capsys):
    from sentence_transformers import SentenceTransformer

    argv = stella_command(cached, tiny_bert, tiny_qwen3, "run", "--save_steps", "1", "--save_total_limit", "0")
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "Found valid teacher cache" in out and "Stage 3/3 (stage3)" in out
    log = [json.loads(line) for line in open("run/train_log.jsonl")]
    assert [r["stage"] for r in log] == ["stage1", "stage2", "stage3"]
    assert all({"loss", "cos", "sim", "resim"} <= set(r) for r in log)
    # stages never overwrite each other's checkpoints
    for stage in ("stage1", "stage2", "stage3"):
        assert sorted(os.listdir(f"run/checkpoints/{stage}")) == ["step-1", "step-2"]

    # stage 1 trained the FC alone: the student is still the initial one
    initial = make_method(tiny_bert, [48]).state_dict()
    after1 = torch.load("run/checkpoints/stage1/step-2/training_state.pt", weights_only=True)["model"]
    after3 = torch.load("run/checkpoints/stage3/step-2/training_state.pt", weights_only=True)["model"]
    student_keys = [k for k in initial if k.startswith("student.")]
    assert all(torch.equal(initial[k], after1[k]) for k in student_keys)
    assert not torch.equal(initial["fc.weight"], after1["fc.weight"])
    assert any(not torch.equal(after1[k], after3[k]) for k in student_keys)

    # the exported folder = student + mean pooling + Dense(32 → 48, identity), same vectors as in training
    method = make_method(tiny_bert, [48, 16, 4])
    method.load_state_dict(after3)
    st = SentenceTransformer("run/model", device="cpu")
    got = torch.as_tensor(st.encode(SENTENCES, convert_to_numpy=True))
    assert got.shape == (len(SENTENCES), 48) and st.get_embedding_dimension() == 48
    assert torch.allclose(got, method.embed(SENTENCES), atol=1e-5)
    dense = json.load(open("run/model/2_Dense/config.json"))
    assert dense["activation_function"].endswith("Identity") and dense["out_features"] == 48

    # re-export at a Matryoshka width: resume from the final checkpoint with --export_dim (no training step)
    argv = stella_command(cached, tiny_bert, tiny_qwen3, "run16", "--resume", "run/checkpoints/stage3/step-2", "--export_dim", "16")
    assert cli.main(argv) == 0
    st16 = SentenceTransformer("run16/model", device="cpu")
    got16 = torch.as_tensor(st16.encode(SENTENCES, convert_to_numpy=True))
    assert got16.shape == (len(SENTENCES), 16)
    assert torch.allclose(got16, got[:, :16], atol=1e-5)  # a prefix of the full width, as trained
    truncated = SentenceTransformer("run/model", device="cpu", truncate_dim=16).encode(SENTENCES, convert_to_numpy=True)
    assert torch.allclose(torch.as_tensor(truncated), got16, atol=1e-5)


def test_single_stage_full_finetune(cached, tiny_bert, tiny_qwen3):
    argv = stella_command(cached, tiny_bert, tiny_qwen3, "ft", "--full_finetune", "true", "--max_steps", "2", "--epochs", "1",
                          "--w_task", "0.5", "--save_steps", "2")
    assert cli.main(argv) == 0
    log = [json.loads(line) for line in open("ft/train_log.jsonl")]
    assert log[-1]["step"] == 2 and "stage" not in log[-1] and log[-1]["task"] > 0
    assert os.listdir("ft/checkpoints") == ["step-2"]  # single stage: the layout of every other method


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--matryoshka_dims", ""], "--matryoshka_dims is empty; give at least one output width, e.g. --matryoshka_dims 48,24,12"),
        (["--matryoshka_dims", "64,16"], "64 is outside 1..48, the teacher's width"),
        (["--matryoshka_dims", "16,16"], "repeats a width"),
        (["--export_dim", "96"], "--export_dim 96 is outside 1..48"),
    ],
)
def test_bad_widths_fail_before_anything_is_loaded(tmp_path, monkeypatch, capsys, tiny_bert, tiny_qwen3, flags, message):
    monkeypatch.chdir(tmp_path)
    refuse_teacher(monkeypatch, tiny_qwen3)
    # the data file does not even exist: the width check comes first
    assert cli.main(stella_command(tmp_path / "missing.csv", tiny_bert, tiny_qwen3, "bad", *flags)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cache_of_another_teacher_is_a_clear_error(cached, tmp_path, tiny_bert, monkeypatch, capsys):
    other = build_qwen3(tmp_path / "other_teacher", seed=7)
    refuse_teacher(monkeypatch, other)
    assert cli.main(stella_command(cached, tiny_bert, other, "wrong")) == 2
    err = capsys.readouterr().err
    assert "does not match this run: teacher:" in err and "--strict_cache false" in err and "Traceback" not in err


def test_seed_style_config_module_and_scripts():
    stella_config = seed_config("stella_config")
    assert stella_config.student_pooling == "mean" and stella_config.w_task == 0.0
    assert (stella_config.w_cos, stella_config.w_sim, stella_config.w_resim, stella_config.resim_margin) == (10.0, 200.0, 20.0, 0.015)
    assert (stella_config.stage1_lr, stella_config.stage2_lr) == (1e-4, 8e-5)
    assert stella_config.matryoshka_dims == [1024, 512, 256, 128] and stella_config.cache_teacher is True
