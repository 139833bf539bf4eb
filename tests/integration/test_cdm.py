"""CDM: its pure loss terms (talas/losses/tokens.py) on hand-computed values; the aligner
(entropy-weighted DTW over hand-made WordPiece/BPE token strings, specials, one-sided truncation);
the weight pass (padding, batching, MLM head or pseudo-logits); the vectorised group averaging
against a loop; clear errors; end to end through the CLI with resume and export.

Run: pytest -q tests/integration/test_cdm.py
"""

from __future__ import annotations

import json
import logging
import math

import pytest
import torch
from e2e_helpers import check_export, check_resume, in_texts_dir, online_command

from talas import cli
from talas.align.groups import dtw_groups
from talas.align.views import token_view
from talas.errors import ConfigError, TrainingError
from talas.losses.tokens import GROUP_LOSSES, cdm_entropy_weights, cdm_group_mse, center_groups, group_mean
from talas.methods import cdm
from talas.methods.cdm import CdmConfig, CdmMethod, EntropyDTW, entropy_weights
from talas.models.encoder import Encoder
from talas.models.logits import student_logits
from talas.train.batching import flatten_groups, pack_alignment


def test_entropy_weights_known_values_with_left_padding():
    # Vocab of 2: [0, 0] is uniform (max entropy, Ĥ = 1 → floor(3 + 3·σ(2)) = 5);
    # [2, 0]: H = 0.365, Ĥ = 0.365 / ln 2 = 0.527 → floor(3 + 3·σ(0.107)) = 4;
    # [30, 0]: H ≈ 0, Ĥ = 0 → floor(3 + 3·σ(−2)) = 3; the left pad gets 0 and is not in the min–max.
    logits = torch.tensor([[[-50.0, 50.0], [0.0, 0.0], [2.0, 0.0], [30.0, 0.0]]])
    mask = torch.tensor([[0, 1, 1, 1]])
    assert cdm_entropy_weights(logits, mask).tolist() == [[0.0, 5.0, 4.0, 3.0]]


def test_entropy_weights_hand_computed_boundary():
    p = torch.tensor([0.881, 0.119])
    h = -(p * p.log()).sum().item()
    assert math.floor(3 + 3 / (1 + math.exp(-(4 * h / math.log(2) - 2)))) == 4


def test_entropy_weights_constant_sequence_and_right_padding():
    logits = torch.zeros(2, 3, 4)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    assert cdm_entropy_weights(logits, mask).tolist() == [[3.0, 3.0, 0.0], [3.0, 3.0, 3.0]]


def test_group_mse_known_values_ignores_invalid_groups():
    student = torch.tensor([[[1.0, 0.0], [2.0, 0.0], [1.0, 0.0]]])
    teacher = torch.tensor([[[0.0, 1.0], [3.0, 0.0], [-1.0, 0.0]]])
    valid = torch.tensor([[True, True, False]])
    # group 0: n() differ by (−1, 1) → squared distance 2 (mean over entries 1); group 1: same
    # direction → 0; group 2 (opposite: 4) is masked.
    assert torch.isclose(cdm_group_mse(student, teacher, valid), torch.tensor(1.0))
    assert torch.isclose(cdm_group_mse(student, teacher, valid, "mse_elementwise"), torch.tensor(0.5))
    # relative: squared distances 2 and 1 over the teacher's squared norms 1 and 9
    assert torch.isclose(cdm_group_mse(student, teacher, valid, "relative"), torch.tensor(0.3))


def test_center_groups_known_values_ignores_invalid_groups():
    states = torch.tensor([[[1.0, 0.0], [3.0, 2.0]], [[2.0, 4.0], [100.0, 100.0]]])
    valid = torch.tensor([[True, True], [True, False]])
    # mean of the 3 valid groups: (2, 2)
    assert center_groups(states, valid).tolist() == [[[-1.0, -2.0], [1.0, 0.0]], [[0.0, 2.0], [98.0, 98.0]]]
    # a batch whose groups all point the same way has nothing left to match
    same = torch.ones(1, 3, 2)
    assert center_groups(same, torch.ones(1, 3, dtype=torch.bool)).abs().max() == 0


def test_group_mse_gradient_reaches_both_sides_and_no_group_is_zero():
    student = torch.randn(2, 3, 4, requires_grad=True)
    teacher = torch.randn(2, 3, 4, requires_grad=True)
    for kind in GROUP_LOSSES:
        student.grad = teacher.grad = None
        cdm_group_mse(student, teacher, torch.ones(2, 3, dtype=torch.bool), kind).backward()
        assert student.grad.abs().sum() > 0 and teacher.grad.abs().sum() > 0, kind
        zero = cdm_group_mse(student, teacher, torch.zeros(2, 3, dtype=torch.bool), kind)
        assert zero.item() == 0.0 and zero.requires_grad, kind


# ----------------------------------------------------------------------------- the method (talas/methods/cdm.py)

TEXT = "abx cd"
# WordPiece (``##``) against byte-level BPE (``Ġ``), no offsets: pieces come from the marker-stripped tokens.
WORDPIECE = token_view(TEXT, ["[CLS]", "ab", "##x", "cd", "[SEP]"], None, [1, 0, 0, 0, 1], lowercase=True)
BPE = token_view(TEXT, ["ab", "Ġcd", "<|endoftext|>"], None, [0, 0, 1], lowercase=True)


def test_views_strip_markers_and_map_specials():
    assert WORDPIECE.pieces == ("", "ab", "x", "cd", "") and WORDPIECE.role == ("bos", "text", "text", "text", "eos")
    assert BPE.pieces == ("ab", "cd", "") and BPE.role == ("text", "text", "eos")


@pytest.mark.parametrize("teacher_weights, groups", [
    # Hand DTW, student rows ab, x, cd (weight 4 each), teacher columns ab, cd; d(x, ab) = d(x, cd) = 2.
    # Teacher (5, 3): acc = [[0, 24], [40, 24], [80, 24]]; back from (2,1) "up" (24) beats the
    # diagonal (40), then the diagonal to (0,0): x joins the confident (low-weight) cd.
    ((5.0, 3.0, 4.0), [((1,), (0,)), ((2, 3), (1,)), ((4,), (2,))]),
    # Teacher (3, 5): acc = [[0, 40], [24, 40], [48, 24]]: the diagonal (24) wins, x joins ab.
    ((3.0, 5.0, 4.0), [((1, 2), (0,)), ((3,), (1,)), ((4,), (2,))]),
])
def test_entropy_weights_move_a_stray_token_to_the_confident_side(teacher_weights, groups):
    # The teacher has no BOS: no BOS group; [SEP] and <|endoftext|> are the EOS group.
    student_weights = (3.0, 4.0, 4.0, 4.0, 3.0)
    aligner = EntropyDTW({(WORDPIECE, BPE): (student_weights, teacher_weights)})
    assert aligner(WORDPIECE, BPE) == groups


def test_student_truncated_drops_teacher_tokens_beyond_it():
    student = token_view(TEXT, ["[CLS]", "ab", "##x", "[SEP]"], None, [1, 0, 0, 1], lowercase=True)
    aligner = EntropyDTW({(student, BPE): ((3.0, 5.0, 5.0, 3.0), (4.0, 4.0, 4.0))})
    # "cd" (chars 4-6) lies beyond the student's "abx" (0-3): only ab and x align, both to the teacher's ab.
    assert aligner(student, BPE) == [((1, 2), (0,)), ((3,), (2,))]


def test_same_pieces_need_no_weights_and_a_missing_text_is_an_error():
    same = token_view(TEXT, ["ab", "Ġx", "Ġcd", "<|endoftext|>"], None, [0, 0, 0, 1], lowercase=True)
    assert cdm.pieces_match(WORDPIECE, same) and not cdm.pieces_match(WORDPIECE, BPE)
    assert EntropyDTW({})(WORDPIECE, same) == [((1,), (0,)), ((2,), (1,)), ((3,), (2,)), ((4,), (3,))]
    with pytest.raises(TrainingError, match="without entropy weights"):
        EntropyDTW({})(WORDPIECE, BPE)


def test_same_pieces_path_is_the_diagonal_whatever_the_weights():
    # Zero-cost diagonal: no positive weighting can move it (why the weight pass skips such texts).
    same = token_view("a a a", ["a", "Ġa", "Ġa"], None, [0, 0, 0], lowercase=True)
    for ws, wt in (((3, 5, 4), (5, 3, 3)), ((5, 5, 3), (3, 4, 5))):
        assert dtw_groups(same, same, ws, wt) == [((0,), (0,)), ((1,), (1,)), ((2,), (2,))]


class _Pad:
    """The two padding sides of Encoder.pad, without a tokenizer."""

    def __init__(self, left):
        self.left = left

    def pad(self, rows):
        width = max(map(len, rows))
        ids, mask = torch.zeros(len(rows), width, dtype=torch.long), torch.zeros(len(rows), width, dtype=torch.long)
        for r, row in enumerate(rows):
            span = slice(width - len(row), width) if self.left else slice(0, len(row))
            ids[r, span], mask[r, span] = torch.tensor(row), 1
        return {"input_ids": ids, "attention_mask": mask}


def _id_logits(features):
    # token id k → logits [k, 0]: id 0 uniform (Ĥ = 1 → 5), 2 → 4, 30 → 3 (see the first test above)
    ids = features["input_ids"].float()
    return torch.stack([ids, torch.zeros_like(ids)], dim=-1)


@pytest.mark.parametrize("left", [False, True])
@pytest.mark.parametrize("budget", [1, 1 << 20])
def test_entropy_weights_per_text_whatever_the_padding_and_batching(monkeypatch, left, budget):
    monkeypatch.setattr(cdm, "_LOGIT_BUDGET", budget)  # 1: one text per batch; 2^20: all together
    ids = [[0, 2, 30], [30, 0], [2, 2, 0, 30]]
    got = entropy_weights(_Pad(left), _id_logits, 2, ids, torch.device("cpu"))
    assert got == [(5.0, 4.0, 3.0), (3.0, 5.0), (4.0, 4.0, 5.0, 3.0)]


def test_pseudo_logits_and_the_mlm_head(tiny_bert, tmp_path):
    from transformers import AutoModel, BertForMaskedLM

    feats = {"input_ids": torch.tensor([[2, 10, 11, 3]]), "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    base = AutoModel.from_pretrained(tiny_bert).eval()
    student = Encoder.load(str(tiny_bert), "mean", 24)
    fn, vocab = student_logits(student, str(tiny_bert), 0, torch.device("cpu"))  # no head in the checkpoint
    with torch.no_grad():
        expected = base(**feats).last_hidden_state @ base.embeddings.word_embeddings.weight.T
        torch.testing.assert_close(fn(feats), expected)
    assert vocab == base.config.vocab_size
    # A checkpoint with an MLM head: its logits (first layer only, as the cut student).
    torch.manual_seed(0)
    BertForMaskedLM(base.config).save_pretrained(tmp_path / "mlm")
    mlm = BertForMaskedLM.from_pretrained(tmp_path / "mlm").eval()
    del mlm.bert.encoder.layer[1:]
    cut = Encoder.load(str(tmp_path / "mlm"), "mean", 24, layers=1)
    fn, _ = student_logits(cut, str(tmp_path / "mlm"), 1, torch.device("cpu"))
    with torch.no_grad():
        torch.testing.assert_close(fn(feats), mlm(**feats).logits)


def test_group_averaging_with_right_and_left_padding():
    # Student right-padded to 4, teacher left-padded to 3; text 0 has 2 groups, text 1 one.
    entries = [flatten_groups([((0, 1), (0,)), ((2,), (1,))]), flatten_groups([((0,), (0, 1))])]
    packed = pack_alignment(entries, [3, 1], 4, False, [2, 2], 3, True)
    s_states = torch.arange(16.0).reshape(2, 4, 2)
    t_states = torch.arange(12.0).reshape(2, 3, 2)
    s_mean, s_ok = group_mean(packed.student_groups, s_states)
    t_mean, t_ok = group_mean(packed.teacher_groups, t_states)
    # student text 0: mean of rows [0,1],[2,3] = [1, 2]; row [4, 5]; text 1: row 0 = [8, 9]
    assert s_mean.tolist() == [[[1.0, 2.0], [4.0, 5.0]], [[8.0, 9.0], [0.0, 0.0]]]
    # teacher left padding shifts positions by 1: text 0 → rows [2, 3] and [4, 5];
    # text 1 → mean of rows [8, 9] and [10, 11] = [9, 10] (its pad row [6, 7] is left out)
    assert t_mean.tolist() == [[[2.0, 3.0], [4.0, 5.0]], [[9.0, 10.0], [0.0, 0.0]]]
    assert s_ok.tolist() == t_ok.tolist() == packed.group_mask.tolist() == [[True, True], [True, False]]


def _loop_cdm(method, batch, center=False):
    """The CDM term written the slow way: a Python loop over texts and groups (independent of group_mean)."""
    tokens = method.student.forward_tokens(batch.features).tokens
    teacher = batch.teacher_hidden[0]
    groups = batch.alignments["cdm"]
    pairs = []
    for b in range(tokens.shape[0]):
        for g in range(groups.group_mask.shape[1]):
            s_idx = groups.student_groups[b, g].nonzero()[:, 0]
            t_idx = groups.teacher_groups[b, g].nonzero()[:, 0]
            if groups.group_mask[b, g] and len(s_idx) and len(t_idx):
                pairs.append((tokens[b, s_idx].mean(0), method.projection(teacher[b, t_idx].mean(0))))
    s_mean = sum(s for s, _ in pairs) / len(pairs) if center else 0
    t_mean = sum(t for _, t in pairs) / len(pairs) if center else 0
    total = 0.0
    for s, t in pairs:
        s, t = s - s_mean, t - t_mean
        total = total + ((t / t.norm() - s / s.norm()) ** 2).sum()
    return total / len(pairs)


@pytest.fixture
def texts(monkeypatch, tmp_path):
    return in_texts_dir(monkeypatch, tmp_path)


def _config(tiny_bert, tiny_qwen3, **extra):
    return CdmConfig(train_data_path="texts.csv", student_model_name=str(tiny_bert), teacher_model_name=str(tiny_qwen3),
                     max_length=24, teacher_prompt="Query: ", pooling_method="last_token", device="cpu", **extra)


def prepared(cfg):
    """What the loop hands CDM before training: the run's texts, student and online teacher."""
    from talas.data.examples import load_from_config
    from talas.models.teacher import load_teacher
    from talas.teacher.provision import OnlineTeacher, TeacherSupply
    from talas.train.setup import prepared

    student = Encoder.load(cfg.student_model_name, cfg.student_pooling, cfg.max_length)
    needs = CdmMethod.teacher_needs(cfg)
    supply = TeacherSupply(needs, online=OnlineTeacher(load_teacher(cfg), needs))
    return prepared(cfg, load_from_config(cfg).unique_texts(), student, supply, torch.device("cpu"))


def test_forward_matches_a_loop_over_groups_on_a_real_batch(texts, tiny_bert, tiny_qwen3, caplog):
    from talas.data.examples import load_from_config
    from talas.teacher.provision import OnlineTeacher
    from talas.train.batching import PairCollator

    cfg = _config(tiny_bert, tiny_qwen3)
    ready = prepared(cfg)
    caplog.set_level(logging.INFO, logger="talas")
    aligners = CdmMethod.aligners(cfg, ready)
    # The two tiny tokenizers learnt the same words from one corpus; 3 texts split differently (é, 😀, "!").
    assert "CDM: 3 of 12 texts" in caplog.text
    table = aligners["cdm"].table
    assert all(set(w) <= {3.0, 4.0, 5.0} for ws in table.values() for w in ws)
    student, teacher = ready.student, ready.supply.token_encoder
    collate = PairCollator(load_from_config(cfg), student, teacher=teacher, aligners=aligners)
    batch = collate(list(range(12)))
    OnlineTeacher(teacher, CdmMethod.teacher_needs(cfg)).fill(batch)
    torch.manual_seed(0)
    method = CdmMethod(cfg, student, teacher.dim).eval()
    loss, metrics = method(batch)
    torch.testing.assert_close(metrics["cdm"], _loop_cdm(method, batch).detach())
    assert metrics["groups"] > 12
    torch.testing.assert_close(loss, 0.9 * metrics["task"] + 0.1 * metrics["cdm"])
    # The elementwise variant is 1/D of it (D = the student's width).
    method.cfg = _config(tiny_bert, tiny_qwen3, group_loss="mse_elementwise")
    torch.testing.assert_close(method(batch)[1]["cdm"] * student.dim, metrics["cdm"])
    # Centred: each side's batch mean group state removed before normalising.
    method.cfg = _config(tiny_bert, tiny_qwen3, center=True)
    centred = method(batch)[1]["cdm"]
    torch.testing.assert_close(centred, _loop_cdm(method, batch, center=True).detach())
    assert not torch.isclose(centred, metrics["cdm"])


def test_token_weight_choices(texts, tiny_bert, tiny_qwen3, monkeypatch):
    from talas.models import teacher

    ready = prepared(_config(tiny_bert, tiny_qwen3))

    def refuse(*_args, **_kwargs):
        raise AssertionError("CDM loaded a model or read a file itself")

    # The weight pass uses what the loop prepared; it never loads a model or the data.
    for owner, name in ((Encoder, "load"), (teacher, "load_teacher"), (cdm, "load_config")):
        monkeypatch.setattr(owner, name, refuse)
    both = CdmMethod.aligners(_config(tiny_bert, tiny_qwen3), ready)["cdm"].table
    teacher_only = CdmMethod.aligners(_config(tiny_bert, tiny_qwen3, token_weights="teacher"), ready)["cdm"].table
    assert both.keys() == teacher_only.keys()
    assert all(ws is not None and teacher_only[key][0] is None and teacher_only[key][1] == wt for key, (ws, wt) in both.items())
    assert CdmMethod.aligners(_config(tiny_bert, tiny_qwen3, token_weights="none"), ready)["cdm"].table is None
    assert CdmMethod.aligners(_config(tiny_bert, tiny_qwen3, w_kd=0.0), None) == {}


def test_projection_trains_at_its_own_learning_rate(tiny_bert):
    method = CdmMethod(CdmConfig(learning_rate=5e-5), Encoder.load(str(tiny_bert), "mean", 24), 48)
    own = [g for g in method.param_groups() if g.get("lr") == 1e-3]
    assert {id(p) for g in own for p in g["params"]} == {id(p) for p in method.projection.parameters()}
    assert all("lr" not in g for g in CdmMethod(CdmConfig(projection_lr=0.0), method.student, 48).param_groups())


@pytest.mark.parametrize("extra, message", [
    ({"w_task": 0.0, "w_kd": 0.0}, "not both 0"),
    ({"teacher_layer": 3}, "--teacher_layer 3 does not exist"),
    ({"teacher_layer": -4}, "--teacher_layer -4 does not exist"),
])
def test_bad_options_fail_in_validate(tiny_bert, tiny_qwen3, extra, message):
    with pytest.raises(ConfigError, match=message):
        CdmMethod.validate(_config(tiny_bert, tiny_qwen3, **extra))
    CdmMethod.validate(_config(tiny_bert, tiny_qwen3, teacher_layer=-3))  # the tiny Qwen3 has 2 layers: -3..2


def command(student, teacher, save_dir, *extra):
    return online_command("cdm", student, teacher, save_dir, "--w_task", "0.5", "--w_kd", "0.5", *extra)


def test_cli_trains_logs_every_term_resumes_and_exports(texts, tiny_bert, tiny_qwen3):
    args = ("--save_steps", "1", "--save_total_limit", "0")
    assert cli.main(command(tiny_bert, tiny_qwen3, "full", *args)) == 0
    log = [json.loads(line) for line in open("full/train_log.jsonl")]
    assert len(log) == 12 and all({"loss", "task", "cdm", "groups"} <= r.keys() and r["groups"] > 0 for r in log)
    first, last = sum(r["cdm"] for r in log[:3]), sum(r["cdm"] for r in log[-3:])
    assert last < 0.7 * first, (first, last)

    full = check_resume(command(tiny_bert, tiny_qwen3, "resumed", *args, "--resume", "latest"), 5, 12)
    # Student + the teacher → student projection (48 → 32), nothing of the teacher itself.
    assert full["model"]["projection.weight"].shape == (32, 48)
    assert not any("embed_tokens" in k or "q_norm" in k for k in full["model"])

    student = Encoder.load(str(tiny_bert), "mean", 24)
    method = CdmMethod(_config(tiny_bert, tiny_qwen3), student, 48)
    st = check_export(method, full["model"])
    assert len(st) == 2  # transformer + pooling: the projection is teacher-side, never exported


def test_config_module_and_scripts():
    import importlib

    module = importlib.import_module("config.cdm_config")
    assert (module.w_task, module.w_kd, module.token_weights, module.group_loss) == (0.9, 0.1, "both", "mse")
