"""DSKD: each loss term on hand-worked tiny tensors (padding on both sides, a left-padded teacher),
per-sentence attention (a padded batch equals each sentence alone), which projector each term trains,
learning on a fixed batch, clear errors, and end to end through the seed-style command with a tiny BERT
student and a tiny Qwen3 teacher (other tokenizer, other width): every term logged, resume, export."""

import json
import logging
import math
import os

import pytest
import torch
from e2e_helpers import check_export, check_resume, seed_config, write_texts  # noqa: E402
from test_train import SENTENCES, refuse_teacher  # noqa: E402
from torch import nn

from talas import cli
from talas.data.batch import Batch
from talas.losses.tokens import cross_attend, std_scaled
from talas.losses.vectors import similarity_kl
from talas.methods.dskd import DskdConfig, DskdMethod
from talas.models.encoder import Encoder, EncoderOutput
from talas.teacher.provision import OnlineTeacher

R2 = math.sqrt(2) / 2
PAD = [100.0, -100.0]  # garbage in padded positions: any leak shows in the values


def angles(*degrees):
    return torch.tensor([[math.cos(math.radians(d)), math.sin(math.radians(d))] for d in degrees])


def reference_kl(target, other, scale):
    """KL(p_target ‖ p_other) of in-batch cosine distributions over j ≠ i, one row at a time in plain Python."""
    def cos(x, i, j):
        return float(x[i] @ x[j] / (x[i].norm() * x[j].norm()))

    total = 0.0
    for i in range(len(target)):
        others = [j for j in range(len(target)) if j != i]
        p = [math.exp(scale * cos(target, i, j)) for j in others]
        q = [math.exp(scale * cos(other, i, j)) for j in others]
        p, q = [x / sum(p) for x in p], [x / sum(q) for x in q]
        total += sum(a * math.log(a / b) for a, b in zip(p, q, strict=True))
    return total / len(target)


# ---- the pure functions ---------------------------------------------------------------------------

def test_std_scaled_uses_each_sentences_real_tokens_only():
    # real values 1, 3, 5, 7 in both rows (right padding, then left padding): mean 4, unbiased var 20/3
    states = torch.tensor([[[1.0, 3.0], [5.0, 7.0], PAD], [PAD, [1.0, 3.0], [5.0, 7.0]]])
    mask = torch.tensor([[1, 1, 0], [0, 1, 1]])
    out = std_scaled(states, mask)
    std = math.sqrt(20 / 3)
    torch.testing.assert_close(out[0, :2], states[0, :2] / std)
    torch.testing.assert_close(out[1, 1:], states[1, 1:] / std)


def test_cross_attend_softmax_runs_over_the_sentences_real_keys():
    # sentence 0: left-padded keys (the pad has the highest score and huge values: it must get weight 0);
    # scores 0 and ln 3 give weights 1/4, 3/4. Sentence 1: right-padded keys, equal scores: 1/2, 1/2.
    scores = torch.tensor([[[5.0, 0.0, math.log(3)]], [[0.0, 0.0, 9.0]]])
    mask = torch.tensor([[0, 1, 1], [1, 1, 0]])
    values = torch.tensor([[PAD, [1.0, 0.0], [0.0, 1.0]], [[2.0, 0.0], [0.0, 4.0], PAD]])
    out = cross_attend(scores, mask, values)
    torch.testing.assert_close(out, torch.tensor([[[0.25, 0.75]], [[1.0, 2.0]]]))


def test_similarity_kl_known_value_and_properties():
    target, other = angles(0, 60, 90), angles(0, 90, 45)
    for scale in (1.0, 10.0):
        assert similarity_kl(target, other, scale).item() == pytest.approx(reference_kl(target, other, scale), rel=1e-5)
    # hand-worked at scale 1: each row has two candidates; p from the target's cosines, q from the other's
    def kl2(p_logits, q_logits):
        p = [math.exp(x) / sum(math.exp(y) for y in p_logits) for x in p_logits]
        q = [math.exp(x) / sum(math.exp(y) for y in q_logits) for x in q_logits]
        return sum(a * math.log(a / b) for a, b in zip(p, q, strict=True))

    r3 = math.sqrt(3) / 2
    rows = [kl2([0.5, 0.0], [0.0, R2]), kl2([0.5, r3], [0.0, R2]), kl2([0.0, r3], [R2, R2])]
    assert similarity_kl(target, other, 1.0).item() == pytest.approx(sum(rows) / 3, rel=1e-5)
    # only directions count (norms and widths may differ); the same geometry gives 0
    assert similarity_kl(target, 3 * torch.cat([target, torch.zeros(3, 5)], 1), 10.0).item() == pytest.approx(0.0, abs=1e-6)
    # the diagonal is left out: with 2 texts each row has one candidate, so any geometry gives 0
    assert similarity_kl(angles(0, 10), angles(0, 170), 10.0).item() == pytest.approx(0.0, abs=1e-7)
    one = torch.randn(1, 4, requires_grad=True)
    loss = similarity_kl(torch.randn(1, 3), one, 10.0)
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(one.grad, torch.zeros(1, 4))


# ---- the method's terms on hand-made states --------------------------------------------------------

class StubStudent(nn.Module):
    """Stands in for an Encoder where the test supplies the token states itself."""

    def __init__(self, dim, pooling="mean"):
        super().__init__()
        self.dim, self.pooling = dim, pooling


def identity_method(**options):
    """DSKD on 2-d states with identity projectors (no bias); the teacher pools its last token (as passed)."""
    method = DskdMethod(DskdConfig(**{"pooling_method": "last_token", **options}), StubStudent(2), 2)
    with torch.no_grad():
        for proj in (method.query, method.t2s, method.s2t):
            proj.weight.copy_(torch.eye(2))
            proj.bias.zero_()
    return method


def hand_batch():
    """3 texts; student right-padded, teacher left-padded, garbage in every pad. Student layer 0 is zero,
    so every score is 0 and each carried token is the plain mean of the other side's real tokens."""
    s_mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0]])
    t_mask = torch.tensor([[0, 1, 1], [1, 1, 1], [0, 0, 1]])
    h_s = torch.tensor([[[1.0, 0.0], [0.0, 1.0], PAD], [[2.0, 0.0]] * 3, [[0.0, 1.0], PAD, PAD]])
    h_t = torch.tensor([[PAD, [1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 3.0], [0.0, 2.0]], [PAD, PAD, [1.0, 1.0]]])
    z_s = torch.tensor([[1.0, 1.0], [0.0, 1.0], [1.0, 0.0]])  # 45°, 90°, 0°
    z_t = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, -1.0]])  # 0°, 0°, 270°
    out = EncoderOutput(pooled=z_s, tokens=h_s, attention_mask=s_mask, hidden_states=(torch.zeros(3, 3, 2),))
    batch = Batch([""] * 3, features={"attention_mask": s_mask}, teacher_features={"attention_mask": t_mask},
                  teacher_hidden=(torch.randn(3, 3, 2), h_t), teacher_vectors=z_t)
    return batch, out


def test_each_dskd_term_known_value_with_padding_on_both_sides():
    batch, out = hand_batch()
    terms = identity_method().dskd_terms(batch, out, torch.arange(3))
    # carried, pooled: v_t→s = mean real teacher tokens (0°, 90°, 45°); v_s→t = mean real student tokens (45°, 0°, 90°)
    assert terms["align_t2s"].item() == pytest.approx((1 - R2 + 0 + 1 - R2) / 3, rel=1e-5)
    assert terms["align_s2t"].item() == pytest.approx((1 - R2 + 0 + 2) / 3, rel=1e-5)
    scale = 1 / (0.05 * 2.0)  # 1 / (τ · T)
    assert terms["kl_student"].item() == pytest.approx(reference_kl(angles(0, 90, 45), angles(45, 90, 0), scale), rel=1e-4)
    assert terms["kl_teacher"].item() == pytest.approx(reference_kl(angles(0, 0, 270), angles(45, 0, 90), scale), rel=1e-4)
    # the squared distance of normalised vectors is 2 (1 - cos)
    mse = identity_method(align_loss="mse").dskd_terms(batch, out, torch.arange(3))
    assert mse["align_s2t"].item() == pytest.approx(2 * terms["align_s2t"].item(), rel=1e-5)


def reference_carry(method, e_s, h_s, e_t, h_t):
    """One sentence, unpadded, written out plainly: student mean pooling, teacher last-token pooling."""
    q = method.query(e_s)
    a = q @ (e_t / e_t.std()).T / math.sqrt(e_t.shape[1])
    t2s = torch.softmax(a, dim=-1) @ method.t2s(h_t / h_t.std())
    s2t = torch.softmax(a.T, dim=-1) @ method.s2t(h_s)
    return t2s.mean(0), s2t[-1]


def test_attention_is_per_sentence_a_padded_batch_equals_each_sentence_alone():
    torch.manual_seed(0)
    method = DskdMethod(DskdConfig(pooling_method="last_token"), StubStudent(3), 4)
    s_len, t_len = [2, 5, 3], [4, 2, 6]
    s_mask = torch.tensor([[1] * n + [0] * (5 - n) for n in s_len])  # right padding
    t_mask = torch.tensor([[0] * (6 - n) + [1] * n for n in t_len])  # left padding
    e_s, h_s, e_t, h_t = torch.randn(3, 5, 3), torch.randn(3, 5, 3), torch.randn(3, 6, 4) * 0.03, torch.randn(3, 6, 4) * 7
    for x, m in ((e_s, s_mask), (h_s, s_mask), (e_t, t_mask), (h_t, t_mask)):
        x[m == 0] = 1e4  # padding must not reach any result
    out = EncoderOutput(pooled=torch.randn(3, 3), tokens=h_s, attention_mask=s_mask, hidden_states=(e_s,))
    batch = Batch([""] * 3, features={"attention_mask": s_mask}, teacher_features={"attention_mask": t_mask}, teacher_hidden=(e_t, h_t))
    v_t2s, v_s2t = method.carry(batch, out, torch.arange(3))
    for b in range(3):
        want = reference_carry(method, e_s[b, : s_len[b]], h_s[b, : s_len[b]], e_t[b, -t_len[b] :], h_t[b, -t_len[b] :])
        torch.testing.assert_close(v_t2s[b], want[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(v_s2t[b], want[1], atol=1e-5, rtol=1e-5)


# ---- gradients and learning on tiny real models ----------------------------------------------------

@pytest.fixture(scope="module")
def real_batch(tiny_bert, tiny_qwen3):
    """A DSKD method on the tiny BERT (32-d) and a batch with the tiny Qwen3's (48-d) online outputs."""
    torch.manual_seed(0)
    # Mean pooling on the teacher side: the tiny Qwen3's EOS embedding is its padding row (all zero), so
    # with last-token pooling the pooled s→t row would attend from a zero key and give P_q no gradient.
    cfg = DskdConfig(student_model_name=str(tiny_bert), teacher_model_name=str(tiny_qwen3), student_pooling="mean",
                     pooling_method="mean", student_dropout=0.0, max_length=24)
    student = Encoder.load(str(tiny_bert), "mean", 24)
    student.model.pooler.requires_grad_(False)
    teacher = Encoder.load(str(tiny_qwen3), "mean", 24)
    texts = SENTENCES[:6] + SENTENCES[:6]  # two views of 6 texts, as single-text data gives
    batch = Batch(texts, features=student.tokenize(texts), teacher_features=teacher.tokenize(texts), size=6,
                  text_ids=torch.tensor(list(range(6)) * 2))
    OnlineTeacher(teacher, DskdMethod.teacher_needs(cfg)).fill(batch)
    assert batch.teacher_features["attention_mask"][:, 0].min() == 0  # the teacher really is left-padded here
    return cfg, student, batch


def test_every_projector_is_trained_and_each_term_reaches_what_it_should(real_batch):
    cfg, student, batch = real_batch
    method = DskdMethod(cfg, student, 48)
    loss, metrics = method(batch)
    assert {"loss", "task", "align_t2s", "kl_student", "align_s2t", "kl_teacher", "dskd"} <= set(metrics)
    parts = {"query": method.query.weight, "t2s": method.t2s.weight, "s2t": method.s2t.weight,
             "student": method.student.model.encoder.layer[-1].output.dense.weight}
    out = method.student.forward_tokens(batch.features, layers=(0,))
    terms = method.dskd_terms(batch, out, torch.arange(6))
    reached = {}
    for name, term in terms.items():
        grads = torch.autograd.grad(term, list(parts.values()), retain_graph=True, allow_unused=True)
        reached[name] = {p for p, g in zip(parts, grads, strict=True) if g is not None and g.abs().sum() > 0}
    assert reached == {
        "align_t2s": {"query", "t2s"},  # the projectors' own task: the student is its label
        "kl_student": {"student"},  # the student learns the carried teacher's geometry (a fixed target)
        "align_s2t": {"query", "s2t", "student"},
        "kl_teacher": {"query", "s2t", "student"},
    }
    loss.backward()
    for name in ("query", "t2s", "s2t"):
        grad = getattr(method, name).weight.grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_projectors_get_their_own_learning_rate(real_batch):
    cfg, student, _ = real_batch
    method = DskdMethod(cfg, student, 48)
    groups = method.param_groups()
    projector_ids = {id(p) for m in (method.query, method.t2s, method.s2t) for p in m.parameters()}
    for group in groups:
        ids = {id(p) for p in group["params"]}
        assert ids <= projector_ids if group.get("lr") == 1e-3 else not ids & projector_ids
    trainable = [p for p in method.parameters() if p.requires_grad]
    assert sum(len(g["params"]) for g in groups) == len(trainable)


def test_a_few_steps_on_a_fixed_batch_lower_every_dskd_term(real_batch):
    cfg, student, batch = real_batch
    torch.manual_seed(1)
    method = DskdMethod(cfg, Encoder.load(cfg.student_model_name, "mean", 24), 48)
    method.student.model.pooler.requires_grad_(False)
    optimizer = torch.optim.AdamW(method.param_groups(), lr=3e-3)
    history = []
    for _ in range(30):
        loss, metrics = method(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(metrics)
    for name in ("align_t2s", "kl_student", "align_s2t", "kl_teacher"):
        assert history[-1][name] < 0.8 * history[0][name], (name, float(history[0][name]), float(history[-1][name]))


def test_ridge_start_fits_the_carrying_projectors_to_the_untrained_models(real_batch, tiny_qwen3, caplog):
    from talas.models.projection import ridge_fit
    from talas.teacher.provision import Prepared, TeacherSupply

    cfg, student, _ = real_batch
    cfg = DskdConfig(**{**cfg.__dict__, "projector_init": "ridge", "projector_init_texts": 10})
    teacher = Encoder.load(str(tiny_qwen3), "mean", 24)
    needs = DskdMethod.teacher_needs(cfg)
    method = DskdMethod(cfg, student, 48)
    caplog.set_level(logging.INFO, logger="talas")
    method.initialise(Prepared(SENTENCES, student, TeacherSupply(needs, online=OnlineTeacher(teacher, needs)), torch.device("cpu")))
    lines = [r.getMessage() for r in caplog.records]
    # The same 10 texts (drawn with the run's seed), embedded independently: the student's mean pooling and
    # the teacher's own sentence vectors; P_s2t is the ridge map between them.
    chosen = sorted(__import__("numpy").random.default_rng(cfg.seed).choice(len(SENTENCES), size=10, replace=False))
    x, y = student.encode([SENTENCES[i] for i in chosen]), teacher.encode([SENTENCES[i] for i in chosen])
    weight, bias = ridge_fit(x, y)
    torch.testing.assert_close(method.s2t.weight, weight, atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(method.s2t.bias, bias, atol=1e-4, rtol=1e-3)
    assert not method.query.weight.any() and not method.query.bias.any()  # zero query: uniform attention at the start
    assert len(lines) == 1 and "ridge regression on 10 texts" in lines[0]
    with torch.no_grad():
        fitted = torch.nn.functional.cosine_similarity(method.s2t(x), y).mean()
    assert fitted > 0.9  # 10 texts, 32 inputs: an almost exact fit


# ---- end to end through the seed-style command ------------------------------------------------------

def command(student, teacher, save_dir, *extra, data="texts.csv"):
    return ["train", "--method", "dskd", "--train_data_path", data, "--student_model_name", str(student),
            "--teacher_model_name", str(teacher), "--save_dir", save_dir, "--batch_size", "4", "--epochs", "2",
            "--learning_rate", "3e-3", "--max_length", "24", "--student_pooling", "mean", "--pooling_method", "last_token",
            "--teacher_prompt", "Query: ", "--log_steps", "1", "--device", "cpu", *extra]


@pytest.fixture
def workdir(workdir):  # conftest's, holding texts.csv
    write_texts(workdir, SENTENCES, quote=False)
    return workdir


def test_trains_logs_every_term_resumes_and_exports_the_student_alone(workdir, tiny_bert, tiny_qwen3):
    args = ("--save_steps", "1", "--save_total_limit", "0")
    assert cli.main(command(tiny_bert, tiny_qwen3, "full", *args)) == 0
    assert not os.path.exists("cache")  # the teacher runs online: no cache is built
    log = [json.loads(line) for line in open("full/train_log.jsonl")]
    assert [r["step"] for r in log] == list(range(1, 7))
    for record in log:
        for term in ("task", "align_t2s", "kl_student", "align_s2t", "kl_teacher", "dskd"):
            assert math.isfinite(record[term]) and record[term] >= 0, (term, record)
        terms = record["align_t2s"] + record["kl_student"] + record["align_s2t"] + record["kl_teacher"]
        assert record["dskd"] == pytest.approx(terms, rel=1e-5)
        assert record["loss"] == pytest.approx(0.5 * record["task"] + 0.5 * record["dskd"], rel=1e-5)

    # Resume from step 2 of 6 reproduces the uninterrupted run, projectors and optimiser included.
    full = check_resume(command(tiny_bert, tiny_qwen3, "resumed", *args, "--resume", "latest"), 2, 6)

    # The checkpoint holds the student and the three projectors (at --projector_lr), nothing of the teacher.
    assert {k.split(".")[0] for k in full["model"]} == {"student", "query", "t2s", "s2t"}
    assert full["model"]["query.weight"].shape == (48, 32) and full["model"]["t2s.weight"].shape == (32, 48)
    assert sorted({g["initial_lr"] for g in full["optimizer"]["param_groups"]}) == [1e-3, 3e-3]

    # The export is the student alone (projectors are training-only), giving the vectors it trained.
    method = DskdMethod(DskdConfig(), Encoder.load(str(tiny_bert), "mean", 24), 48)
    st = check_export(method, full["model"], SENTENCES)
    assert len(st) == 2 and st.get_embedding_dimension() == 32


def test_kd_rate_zero_is_the_student_only_baseline_without_the_teacher(workdir, tiny_bert, tiny_qwen3, monkeypatch):
    refuse_teacher(monkeypatch, tiny_qwen3)
    assert cli.main(command(tiny_bert, tiny_qwen3, "base", "--kd_rate", "0", "--max_steps", "2")) == 0
    log = [json.loads(line) for line in open("base/train_log.jsonl")]
    assert set(log[-1]) >= {"loss", "task"} and "dskd" not in log[-1]


@pytest.mark.parametrize("flags,message", [
    (["--kd_rate", "1.5"], "--kd_rate 1.5 is out of range: it must be in [0, 1]"),
    (["--teacher_layer", "3"], "--teacher_layer 3: "),
    (["--teacher_layer", "-4"], "has 2 layers (valid: -3..2, 0 = embeddings, -1 = last)"),
])
def test_bad_options_fail_before_anything_is_loaded(workdir, tiny_bert, tiny_qwen3, monkeypatch, capsys, flags, message):
    refuse_teacher(monkeypatch, tiny_qwen3)
    # the data file does not even exist: the option check comes first
    assert cli.main(command(tiny_bert, tiny_qwen3, "bad", *flags, data="missing.csv")) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_seed_style_config_module_and_scripts():
    dskd_config = seed_config("dskd_config")
    assert (dskd_config.kd_rate, dskd_config.kd_temperature, dskd_config.projector_lr) == (0.5, 2.0, 1e-3)
    assert dskd_config.align_loss == "cosine" and dskd_config.teacher_layer == -1
    assert (dskd_config.projector_init, dskd_config.projector_init_texts) == ("random", 1024)
