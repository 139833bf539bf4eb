"""EMO: linear CKA (known value, identity, orthogonal and scale invariance, padding), batched Sinkhorn
(known plans, marginals, masks, fp32 under bf16 autocast, non-convergence reported), importance,
masses and top-m on hand-made tensors, content tokens and the layer map on hand-made cases, IRA on
columns that correspond across tokenizations (left-padded teacher), and a tiny end-to-end run
through the seed-style CLI (tiny Qwen3 teacher with left padding) with resume and export."""

import json
import math
import os

import pytest
import torch
from e2e_helpers import check_export, check_resume, in_texts_dir, online_command

from talas import cli
from talas.align.views import TokenView
from talas.errors import ConfigError
from talas.losses.attention import emo_importance, emo_top_m, linear_cka
from talas.losses.transport import emo_masses, sinkhorn
from talas.methods import get_method
from talas.methods.emo import EmoConfig, EmoMethod, content_positions, layer_map
from talas.models.encoder import Encoder

# ----------------------------------------------------------------------------- linear CKA


def test_cka_known_value():
    # Both already centred. XᵀY = [2, 1] → ‖·‖² = 5; ‖XᵀX‖ = ‖[[2, 1], [1, 2]]‖ = √10; ‖YᵀY‖ = 2.
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]])
    y = torch.tensor([[[1.0], [0.0], [-1.0]]])
    cka, defined = linear_cka(x, y)
    assert defined.item() and cka.item() == pytest.approx(5 / (2 * math.sqrt(10)), rel=1e-6)
    # Centring is part of it: shifting every row by a constant changes nothing.
    cka_shifted, _ = linear_cka(x + torch.tensor([3.0, -2.0]), y + 7.0)
    assert cka_shifted.item() == pytest.approx(cka.item(), rel=1e-5)


def test_cka_identity_orthogonal_and_scale_invariance():
    torch.manual_seed(0)
    x = torch.randn(3, 6, 5)
    q, _ = torch.linalg.qr(torch.randn(5, 5))
    cka, defined = linear_cka(x, x)
    assert defined.all()
    torch.testing.assert_close(cka, torch.ones(3), atol=1e-6, rtol=0)
    torch.testing.assert_close(linear_cka(x, 3.7 * x @ q)[0], torch.ones(3), atol=1e-5, rtol=0)
    y = torch.randn(3, 6, 4)  # another width
    reference = linear_cka(x, y)[0]
    assert (reference < 0.99).all()
    torch.testing.assert_close(linear_cka(0.2 * x @ q, 5.0 * y)[0], reference, atol=1e-5, rtol=0)


def test_cka_padded_rows_are_ignored_and_too_few_rows_are_undefined():
    torch.manual_seed(1)
    x, y = torch.randn(1, 4, 3), torch.randn(1, 4, 2)
    padded_x = torch.cat([x, torch.full((1, 2, 3), 9.0)], 1)
    padded_y = torch.cat([y, torch.full((1, 2, 2), -4.0)], 1)
    rows = torch.tensor([[True] * 4 + [False] * 2])
    torch.testing.assert_close(linear_cka(padded_x, padded_y, rows)[0], linear_cka(x, y)[0], atol=1e-6, rtol=0)
    # Two rows: centred they are ±d on each side, CKA 1 whatever they are; constant rows: no spread.
    two = torch.tensor([[True, True, False, False, False, False]])
    cka, defined = linear_cka(padded_x, padded_y, two)
    assert not defined.item() and cka.item() == 0
    cka, defined = linear_cka(torch.ones(1, 4, 3), y)
    assert not defined.item() and not torch.isnan(cka).any()


def test_cka_gradient_reaches_both_sides():
    x = torch.randn(2, 5, 3, requires_grad=True)
    y = torch.randn(2, 5, 4, requires_grad=True)
    (1 - linear_cka(x, y)[0]).sum().backward()
    assert x.grad.abs().sum() > 0 and y.grad.abs().sum() > 0 and torch.isfinite(x.grad).all()


# ----------------------------------------------------------------------------- Sinkhorn


def test_sinkhorn_known_plans():
    # Symmetric 2x2: C = [[0, 1], [1, 0]], a = b = (½, ½): P = [[p, q], [q, p]] with q/p = e^(-1/ε).
    eps = 0.5
    k = math.exp(-1 / eps)
    cost = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]])
    half = torch.tensor([[0.5, 0.5]])
    plan, error, _ = sinkhorn(cost, half, half, eps, 100, 1e-7)
    expected = torch.tensor([[[0.5, 0.5 * k], [0.5 * k, 0.5]]]) / (1 + k)
    torch.testing.assert_close(plan, expected, atol=1e-6, rtol=0)
    assert error.item() <= 1e-7
    # a = (0.6, 0.4), b = (½, ½), ε = 1: P = [[x, 0.6 − x], [0.5 − x, x − 0.1]] with the entropic
    # condition P11·P22 / (P12·P21) = e^(2/ε), i.e. (1 − r)x² + (1.1r − 0.1)x − 0.3r = 0, r = e².
    r = math.e**2
    qa, qb, qc = 1 - r, 1.1 * r - 0.1, -0.3 * r
    x = (-qb + math.sqrt(qb * qb - 4 * qa * qc)) / (2 * qa)
    if not 0.1 < x < 0.5:
        x = (-qb - math.sqrt(qb * qb - 4 * qa * qc)) / (2 * qa)
    plan, _, _ = sinkhorn(cost, torch.tensor([[0.6, 0.4]]), half, 1.0, 200, 1e-8)
    torch.testing.assert_close(plan, torch.tensor([[[x, 0.6 - x], [0.5 - x, x - 0.1]]]), atol=1e-6, rtol=0)
    # One row: the plan is b itself, whatever the cost.
    plan, _, _ = sinkhorn(torch.tensor([[[0.3, 0.9, 0.1]]]), torch.tensor([[1.0]]), torch.tensor([[0.2, 0.5, 0.3]]), 0.1, 100, 1e-6)
    torch.testing.assert_close(plan, torch.tensor([[[0.2, 0.5, 0.3]]]), atol=1e-6, rtol=0)


def reference_sinkhorn(cost, a, b, eps, iterations):
    """Plain scaling iterations in float64 on one unpadded problem (Cuturi 2013)."""
    kernel = torch.exp(-cost.double() / eps)
    u, v = torch.ones_like(a, dtype=torch.float64), torch.ones_like(b, dtype=torch.float64)
    for _ in range(iterations):
        u = a.double() / (kernel @ v)
        v = b.double() / (kernel.T @ u)
    return u[:, None] * kernel * v[None, :]


def test_sinkhorn_batched_with_masks_matches_each_problem_alone():
    torch.manual_seed(2)
    sizes = [(3, 5), (6, 2), (4, 4)]
    cost = torch.rand(3, 6, 5)
    a, b = torch.zeros(3, 6), torch.zeros(3, 5)
    for i, (n, m) in enumerate(sizes):
        a[i, :n] = torch.softmax(torch.randn(n), 0)
        b[i, :m] = torch.softmax(torch.randn(m), 0)
    plan, error, iterations = sinkhorn(cost, a, b, 0.1, 100, 1e-5)
    assert iterations <= 100 and (error <= 1e-5).all()
    for i, (n, m) in enumerate(sizes):
        assert plan[i, n:].abs().sum() == 0 and plan[i, :, m:].abs().sum() == 0  # padding moves nothing
        torch.testing.assert_close(plan[i, :n, :m].sum(1), a[i, :n], atol=1e-5, rtol=0)
        torch.testing.assert_close(plan[i, :n, :m].sum(0), b[i, :m], atol=1e-6, rtol=0)
        expected = reference_sinkhorn(cost[i, :n, :m], a[i, :n], b[i, :m], 0.1, 500).float()
        torch.testing.assert_close(plan[i, :n, :m], expected, atol=2e-5, rtol=0)


def test_sinkhorn_is_fp32_under_bf16_autocast_and_a_constant_for_backward():
    torch.manual_seed(3)
    cost = torch.rand(2, 4, 3, requires_grad=True)
    a, b = torch.softmax(torch.randn(2, 4), 1), torch.softmax(torch.randn(2, 3), 1)
    reference, _, _ = sinkhorn(cost, a, b, 0.1, 100, 1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plan, _, _ = sinkhorn(cost.bfloat16(), a.bfloat16(), b.bfloat16(), 0.1, 100, 1e-6)
    assert plan.dtype == torch.float32 and not plan.requires_grad
    # bf16 inputs are rounded (3 significant digits), the iterations are not: close to fp32 to ~1e-2 of a mass.
    torch.testing.assert_close(plan, reference, atol=5e-3, rtol=0)
    (reference * cost).sum().backward()
    torch.testing.assert_close(cost.grad, reference)  # d⟨P, C⟩/dC = P (envelope theorem)


def test_sinkhorn_reports_non_convergence():
    torch.manual_seed(4)
    cost, a, b = torch.rand(2, 5, 5), torch.softmax(torch.randn(2, 5) * 3, 1), torch.softmax(torch.randn(2, 5) * 3, 1)
    plan, error, iterations = sinkhorn(cost, a, b, 0.01, 2, 1e-9)
    assert iterations == 2 and (error > 1e-9).all()
    torch.testing.assert_close(error, (plan.sum(2) - a).abs().sum(1), atol=1e-6, rtol=0)


# ----------------------------------------------------------------------------- importance, masses, top-m


def test_importance_sums_received_attention_over_real_queries_and_floors_excluded_tokens():
    # One text, left padded (position 0), 2 heads whose mean is `mean`; rows are queries.
    mean = torch.tensor([[0.0, 0.0, 0.0, 0.0],
                         [0.0, 0.7, 0.2, 0.1],
                         [0.0, 0.5, 0.4, 0.1],
                         [0.0, 0.6, 0.1, 0.3]])
    attention = torch.stack([mean + 0.05, mean - 0.05])[None]
    mask = torch.tensor([[0, 1, 1, 1]])
    content = torch.tensor([[False, False, True, True]])  # position 1 is a sink ([CLS]-like)
    # received (real query rows 1-3): position 1: 1.8, 2: 0.7, 3: 0.5 → the sink gets the floor 0.5.
    out = emo_importance(attention, mask, content)
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.5, 0.7, 0.5]]), atol=1e-6, rtol=0)
    # No content token at all: every real token gets 0 (uniform masses downstream).
    torch.testing.assert_close(emo_importance(attention, mask, torch.zeros(1, 4, dtype=torch.bool)), torch.zeros(1, 4))


def test_masses_carry_teacher_mass_through_the_pairs():
    importance = torch.tensor([[0.0, math.log(1.0), math.log(2.0), math.log(5.0)]])  # pad, then softmax 1:2:5
    teacher_mask = torch.tensor([[0, 1, 1, 1]])
    student_mask = torch.tensor([[1, 1, 1, 0]])
    # pairs: student 0 ↔ teacher 3, student 2 ↔ teacher 1; student 1 unpaired; one empty pair slot.
    pairs_s = torch.tensor([[[1.0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]])
    pairs_t = torch.tensor([[[0.0, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, 0]]])
    a_s, a_t = emo_masses(importance, teacher_mask, pairs_s, pairs_t, student_mask)
    torch.testing.assert_close(a_t, torch.tensor([[0.0, 1 / 8, 2 / 8, 5 / 8]]))
    # carried: 5/8, unpaired: the smallest teacher mass 1/8, 1/8; renormalised over 7/8.
    torch.testing.assert_close(a_s, torch.tensor([[5 / 7, 1 / 7, 1 / 7, 0.0]]))


def test_top_m_takes_the_most_important_eligible_pairs():
    scores = torch.tensor([[0.9, 0.5, 0.7, 0.7, 0.1, 3.0, 0.0],
                           [0.2, 0.4, 0.0, 0.0, 0.0, 0.0, 0.0]])
    eligible = torch.tensor([[True, True, True, True, True, False, False],
                             [True, True, False, False, False, False, False]])
    n_map = torch.tensor([7, 6])
    top = emo_top_m(scores, eligible, n_map, 3)
    # row 0: m = 2; pair 5 (3.0) is not eligible; 0.9, then the first of the tied 0.7s.
    # row 1: m = 2, both eligible pairs.
    assert top.tolist() == [[True, False, True, False, False, False, False],
                            [True, True, False, False, False, False, False]]
    assert emo_top_m(scores, eligible, torch.tensor([2, 12]), 3).sum(1).tolist() == [0, 2]  # ⌊2/3⌋ = 0; only 2 eligible


# ----------------------------------------------------------------------------- content tokens, layer map


def view(tokens, text):
    """A TokenView from (piece, role) with spans found in ``text`` left to right."""
    spans, at = [], 0
    for piece, role in tokens:
        if role == "text":
            start = text.index(piece, at)
            spans.append((start, start + len(piece)))
            at = start + len(piece)
        else:
            spans.append((0, 0))
    return TokenView(tuple(p for p, _ in tokens), tuple(spans), tuple(r for _, r in tokens))


def test_content_tokens_exclude_specials_stop_words_digits_and_punctuation():
    text = "The arena don't open at 9pm, a shame."
    tokens = [("", "bos"), ("The", "text"), ("a", "text"), ("rena", "text"), ("don", "text"), ("'", "text"),
              ("t", "text"), ("open", "text"), ("at", "text"), ("9", "text"), ("pm", "text"), (",", "text"),
              ("a", "text"), ("sha", "text"), ("me", "text"), (".", "text"), ("", "eos")]
    v = view(tokens, text)
    # "The", "at", the lone "a": stop words (case folded); "a"+"rena" is one word, not a stop word;
    # "don"+"'"+"t" is the stop word "don't"; "9": a digit (its word-mate "pm" stays); ",", ".": punctuation.
    assert content_positions(v) == (2, 3, 7, 10, 13, 14)
    assert content_positions(v, skip_punctuation=False) == (2, 3, 7, 10, 11, 13, 14, 15)


@pytest.mark.parametrize("student, teacher, count, expected", [
    (2, 12, 2, [(0, 5), (1, 11)]),    # MiniLM cut to 2 under MPNet: step 6
    (6, 28, 2, [(4, 19), (5, 27)]),   # step 4
    (5, 12, 2, [(3, 7), (4, 11)]),    # step 2: (4+1)·2−1 = 9, but the last goes to the last
    (3, 3, 1, [(2, 2)]),
])
def test_layer_map(student, teacher, count, expected):
    assert layer_map(student, teacher, count) == expected


def test_layer_map_rejects_a_shallower_teacher_and_too_many_layers():
    with pytest.raises(ConfigError, match="fewer than the student's 6"):
        layer_map(6, 4, 2)
    with pytest.raises(ConfigError, match="--ira_layers 3"):
        layer_map(2, 12, 3)


# ----------------------------------------------------------------------------- the method


@pytest.fixture
def method(tiny_bert, tiny_qwen3):
    cfg = EmoConfig(method="emo", student_model_name=str(tiny_bert), teacher_model_name=str(tiny_qwen3), top_m_divisor=1)
    return EmoMethod(cfg, Encoder.load(str(tiny_bert), "mean", 24), 48)


def attention_rows(n, seed):
    generator = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(2, n, n, generator=generator) * 2, -1)  # 2 heads


def test_teacher_needs_eager_attentions_of_the_mapped_layers(method):
    needs = EmoMethod.teacher_needs(method.cfg)
    assert method.layers == [(0, 0), (1, 1)] and needs.attention_layers == (0, 1)
    assert needs.student_attentions and needs.layers == (-1,) and set(EmoMethod.aligners(method.cfg, None)) == {"mined", "content"}
    no_ira = EmoMethod.teacher_needs(EmoConfig(**{**vars(method.cfg), "w_ira": 0.0}))
    assert no_ira.attention_layers == (1,) and not no_ira.student_attentions  # importance still needs the last layer
    assert not EmoMethod.teacher_needs(EmoConfig(**{**vars(method.cfg), "alpha": 0.0})).online


def test_ira_compares_columns_of_the_same_tokens_across_tokenizations(method):
    # Student: 4 real tokens, right padded to 5. Teacher: left padded by 1, 6 real tokens of which
    # positions 2 and 5 have no pair. Pairs (student → teacher): 0→1, 1→3, 2→4, 3→6.
    s_pos, t_pos = [0, 1, 2, 3], [1, 3, 4, 6]
    pairs_s, pairs_t = torch.zeros(1, 4, 5), torch.zeros(1, 4, 7)
    for g, (s, t) in enumerate(zip(s_pos, t_pos, strict=True)):
        pairs_s[0, g, s], pairs_t[0, g, t] = 1, 1
    group_mask = torch.ones(1, 4, dtype=torch.bool)
    content = torch.ones(1, 7, dtype=torch.bool)
    importance = torch.rand(1, 7)
    layers = []
    for layer in range(2):
        student = attention_rows(5, layer)[None]
        teacher = attention_rows(7, 10 + layer)[None]
        # The teacher's attention among the paired tokens equals the student's (other entries random).
        for i, ti in enumerate(t_pos):
            for j, tj in enumerate(t_pos):
                teacher[0, :, ti, tj] = student[0, :, s_pos[i], s_pos[j]]
        layers.append((student, teacher))
    student_attn = tuple(s for s, _ in layers)
    teacher_attn = {0: layers[0][1], 1: layers[1][1]}
    loss, texts, top_m = method.ira(student_attn, teacher_attn, pairs_s, pairs_t, group_mask, content, importance)
    assert texts.item() == 1 and top_m.item() == 4
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    # Read the teacher at the positions as if it were right padded (the seed's bug): no longer equal.
    shifted = torch.roll(pairs_t, -1, dims=2)
    loss, _, _ = method.ira(student_attn, teacher_attn, pairs_s, shifted, group_mask, content, importance)
    assert loss.item() > 0.01


SENTENCES = [
    "a man is playing a guitar", "a woman is slicing an onion", "the cat sits on the mat",
    "two dogs run across the field", "i feel happy and relaxed today", "my card payment was declined 42 times",
    "how do i reset my pin", "the stock market fell sharply", "children are playing in the park",
    "a plane is taking off", "The man plays guitar on stage!", "an onion is being cut, é 😀",
]


@pytest.fixture
def texts(monkeypatch, tmp_path):
    return in_texts_dir(monkeypatch, tmp_path, SENTENCES)


def command(student, teacher, save_dir, *extra):
    return online_command("emo", student, teacher, save_dir, "--student_pooling", "mean", "--top_m_divisor", "2", *extra)


def test_emo_end_to_end_resume_and_export(texts, tiny_bert, tiny_qwen3, capsys):
    args = ("--save_steps", "1", "--save_total_limit", "0")
    assert cli.main(command(tiny_bert, tiny_qwen3, "full", *args)) == 0
    assert not os.path.exists("cache")  # online teacher: no cache
    log = [json.loads(line) for line in open("full/train_log.jsonl")]
    assert len(log) == 12
    for record in log:  # every term logged, finite, and the Sinkhorn report
        for key in ("loss", "task", "ira", "ot", "ira_texts", "top_m", "ot_error", "ot_iters", "ot_unconverged"):
            assert math.isfinite(record[key]), (key, record)
        assert 0 < record["ot"] <= 1 and record["ot_unconverged"] == 0 and record["ot_error"] <= 1e-5
        assert record["loss"] == pytest.approx(0.5 * record["task"] + 0.5 * (0.1 * record["ira"] + record["ot"]), rel=1e-4)
    assert sum(r["ira_texts"] for r in log) > 0 and max(r["top_m"] for r in log) >= 3

    # Resume from step 5 of 12 reproduces the uninterrupted run.
    full = check_resume(command(tiny_bert, tiny_qwen3, "resumed", *args, "--resume", "latest"), 5, 12)

    # The checkpoint holds the student and P (48 → 32), nothing of the teacher.
    student = Encoder.load(str(tiny_bert), "mean", 24, attn_implementation="eager")
    cfg = EmoConfig(method="emo", student_model_name=str(tiny_bert), teacher_model_name=str(tiny_qwen3))
    method = EmoMethod(cfg, student, 48)
    assert set(full["model"]) == set(method.state_dict()) and full["model"]["projection.weight"].shape == (32, 48)
    assert not any("q_norm" in k or "embed_tokens" in k for k in full["model"])
    # P trains at its own lr (1e-3), the student at --learning_rate.
    assert sorted({g["lr"] for g in full["optimizer"]["param_groups"]}) == [1e-3, 3e-3]

    # The export is the student alone, loaded back by sentence-transformers.
    st = check_export(method, full["model"], SENTENCES)
    assert len(st) == 2  # transformer + pooling: P is not exported


def test_distillation_alone_lowers_the_emo_terms(texts, tiny_bert, tiny_qwen3):
    argv = command(tiny_bert, tiny_qwen3, "kd", "--alpha", "1", "--epochs", "8", "--student_dropout", "0")
    assert cli.main(argv) == 0
    log = [json.loads(line) for line in open("kd/train_log.jsonl")]
    assert all(r["task"] == 0 for r in log)
    first, last = sum(r["loss"] for r in log[:6]), sum(r["loss"] for r in log[-6:])
    assert last < first, (first, last)


@pytest.mark.parametrize("flags, message", [
    (("--alpha", "1.5"), "--alpha 1.5 must be in [0, 1]"),
    (("--w_ira", "0", "--w_ot", "0"), "nothing to distil"),
])
def test_bad_options_fail_before_anything_is_loaded(texts, tiny_bert, tiny_qwen3, capsys, flags, message):
    assert cli.main(command(tiny_bert, tiny_qwen3, "bad", "--train_data_path", "missing.csv", *flags)) == 2
    assert message in capsys.readouterr().err


def test_registered_and_seed_style_config():
    assert get_method("emo") is EmoMethod
    import config.emo_config as seed_style

    assert seed_style.ot_epsilon == 0.1 and seed_style.ot_max_iter == 100 and seed_style.w_ira == 0.1


def test_softmax_cost_is_blind_to_a_texts_mean_teacher_state_and_cosine_is_not():
    from talas.losses.transport import emo_ot_cost

    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(2, 3, 4, generator=g), torch.randn(2, 5, 4, generator=g)
    mask = torch.tensor([[1, 1, 1, 1, 1], [0, 1, 1, 1, 1]])  # the second text left-padded
    shifted = teacher + torch.randn(2, 1, 4, generator=g)  # one vector added to all of a text's tokens
    softmax, cosine = (emo_ot_cost(student, teacher, mask, kind) for kind in ("softmax", "cosine"))
    torch.testing.assert_close(emo_ot_cost(student, shifted, mask, "softmax"), softmax)
    assert (emo_ot_cost(student, shifted, mask, "cosine") - cosine)[mask.bool().unsqueeze(1).expand_as(cosine)].abs().max() > 0.1
    # known values: a row's softmax costs over real columns sum to (columns - 1); cosine = 1 - cos
    assert torch.allclose(softmax[0].sum(-1), torch.full((3,), 4.0)) and torch.allclose(softmax[1, :, 1:].sum(-1), torch.full((3,), 3.0))
    expected = 1 - torch.nn.functional.cosine_similarity(student[0, 1], teacher[0, 2], dim=0)
    torch.testing.assert_close(cosine[0, 1, 2], expected)
