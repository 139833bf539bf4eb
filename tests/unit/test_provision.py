"""Teacher provisioning by declaration, token-level encoder outputs and the token-aware collator,
on the tiny BERT (WordPiece, right padding) and tiny Qwen3 (byte BPE, EOS appended, left padding)."""

import numpy as np
import pytest
import torch

from talas.data.batch import Alignment, Batch, to_device
from talas.data.examples import TrainingData
from talas.errors import ConfigError, ModelError
from talas.methods.talas import TalasConfig, TalasMethod
from talas.models.encoder import Encoder
from talas.teacher.provision import OnlineTeacher, TeacherNeeds, provide
from talas.train.batching import PairCollator, flatten_groups, pack_alignment

TEXTS = ["a man is playing a guitar", "the cat sits", "my card payment was declined today, sadly", "hi"]


@pytest.fixture(scope="module")
def student(tiny_bert):
    return Encoder.load(str(tiny_bert), "mean", max_length=16)


@pytest.fixture(scope="module")
def teacher(tiny_qwen3):
    return Encoder.load(str(tiny_qwen3), "last_token", max_length=16, prompt="Query: ").eval().requires_grad_(False)


def test_token_encodings_are_the_ids_the_model_gets(student, teacher):
    for enc in (student, teacher):
        got = enc.token_encodings(TEXTS)
        assert [list(e.ids) for e in got] == enc.token_ids(TEXTS)
        for e in got:
            assert len(e.tokens) == len(e.offsets) == len(e.special) == len(e.ids)
    qwen = teacher.token_encodings(["the cat"])[0]
    assert qwen.special[-1] and qwen.offsets[-1] == (0, 0) and qwen.ids[-1] == teacher.tokenizer.eos_token_id
    full = "Query: the cat"
    assert [full[a:b] for a, b in qwen.offsets[:-1]][-2:] == [" the", " cat"]  # offsets index prompt + text (Ġthe takes the prompt's space)
    bert = student.token_encodings(["the cat"])[0]
    assert bert.special == (True, False, False, True) and bert.tokens[0] == "[CLS]"


def test_uncased_detection(student, teacher):
    assert student.uncased and not teacher.uncased


def test_forward_tokens_selects_layers_and_matches_the_pooled_path(student):
    feats = student.tokenize(TEXTS)
    with torch.no_grad():
        out = student.forward_tokens(feats, layers=(0, -1, 1))
        pooled = student(feats)
        full = student.model(**feats, output_hidden_states=True)
    torch.testing.assert_close(out.pooled, pooled)
    assert len(out.hidden_states) == 3 and out.attentions == ()
    torch.testing.assert_close(out.hidden_states[0], full.hidden_states[0])
    torch.testing.assert_close(out.hidden_states[1], out.tokens)
    torch.testing.assert_close(out.hidden_states[2], full.hidden_states[1])
    assert out.attention_mask is feats["attention_mask"]
    with pytest.raises(ConfigError, match="do not exist"):
        student.forward_tokens(feats, layers=(3,))


def test_attentions_need_eager_and_come_per_layer(tiny_qwen3):
    fused = Encoder.load(str(tiny_qwen3), "last_token", max_length=16, attn_implementation="sdpa")
    feats = fused.tokenize(TEXTS)
    with pytest.raises(ModelError, match="eager"):
        fused.forward_tokens(feats, attention_layers=(-1,))
    eager = Encoder.load(str(tiny_qwen3), "last_token", max_length=16, attn_implementation="eager")
    with torch.no_grad():
        out = eager.forward_tokens(feats, attention_layers=(0, -1))
    b, width = feats["input_ids"].shape
    assert [a.shape for a in out.attentions] == [(b, 4, width, width)] * 2
    # Rows are softmax distributions over keys; left padding: a short text's first keys get no mass.
    torch.testing.assert_close(out.attentions[1].sum(-1), torch.ones(b, 4, width))
    short = int(feats["attention_mask"].sum(1).argmin())
    pads = int((feats["attention_mask"][short] == 0).sum())
    assert pads > 0 and out.attentions[1][short, :, -1, :pads].abs().max() == 0


def test_default_declarations_of_the_sentence_level_methods():
    assert TalasMethod.teacher_needs(TalasConfig()) == TeacherNeeds(vectors="cached")
    assert TalasMethod.teacher_needs(TalasConfig(cache_teacher=False)) == TeacherNeeds(vectors="online")
    assert TalasMethod.teacher_needs(TalasConfig(w_kd=0.0)) == TeacherNeeds(vectors="none")
    assert TalasMethod.aligners(TalasConfig(), None) == {}
    assert not TeacherNeeds().online and TeacherNeeds(vectors="none", layers=(-1,)).online


@pytest.mark.parametrize("kwargs, message", [
    ({"vectors": "cache"}, "vectors must be one of"),
    ({"alignments": ("span",)}, "declare layers"),
])
def test_bad_declarations_are_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        TeacherNeeds(**kwargs)


def test_pack_alignment_known_values_with_left_padded_teacher():
    # Text 0: student [CLS] a b [SEP] (4 tokens), teacher a b EOS (3); text 1: student 3, teacher 2.
    text0 = flatten_groups([((0,), ()), ((1, 2), (0,)), ((3,), (1, 2))])
    text1 = flatten_groups([((1,), (0,))])
    out = pack_alignment([text0, text1], [4, 3], 4, False, [3, 2], 3, True)
    assert out.student_groups.shape == (2, 3, 4) and out.teacher_groups.shape == (2, 3, 3)
    assert out.group_mask.tolist() == [[True, True, True], [True, False, False]]
    assert out.student_groups[0].tolist() == [[1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 1]]
    assert out.teacher_groups[0].tolist() == [[0, 0, 0], [1, 0, 0], [0, 1, 1]]
    # Row 1 of the teacher is left-padded by one: its position 0 sits at column 1.
    assert out.teacher_groups[1].tolist() == [[0, 1, 0], [0, 0, 0], [0, 0, 0]]
    assert out.student_groups[1].tolist() == [[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]


def single_texts(texts):
    return TrainingData("x", "single", list(texts), list(texts), [None] * len(texts))


def test_collator_adds_both_tokenizations_and_tokenizes_each_text_once(student, teacher, monkeypatch):
    data = single_texts(TEXTS)
    collate = PairCollator(data, student, single_view=True, teacher=teacher)
    calls = []
    for enc in (student, teacher):
        real = enc.token_encodings
        monkeypatch.setattr(enc, "token_encodings", lambda texts, real=real: calls.append(len(texts)) or real(texts))
    first = collate([2, 0])
    second = collate([0, 2, 1])
    assert calls == [2, 2, 1, 1]  # texts 0 and 2 once per side, then only text 1
    for batch in (first, second):
        for key, enc in (("features", student), ("teacher_features", teacher)):
            expected = enc.tokenize(batch.texts)
            assert all(torch.equal(getattr(batch, key)[k], expected[k]) for k in expected)
    assert second.teacher_features["attention_mask"][:, -1].all()  # left padded


def test_online_teacher_fills_what_was_declared_as_autograd_constants(student, teacher):
    needs = TeacherNeeds(vectors="online", layers=(-1, 1))
    online = OnlineTeacher(teacher, needs, normalize=True)
    batch = Batch(TEXTS, teacher_features=teacher.tokenize(TEXTS))
    online.fill(batch)
    with torch.no_grad():
        expected = teacher.forward_tokens(teacher.tokenize(TEXTS), layers=(-1, 1))
    torch.testing.assert_close(batch.teacher_vectors, torch.nn.functional.normalize(expected.pooled, dim=-1))
    assert batch.teacher_mask.all() and batch.teacher_attentions is None
    torch.testing.assert_close(batch.teacher_hidden[0], expected.hidden_states[0])
    torch.testing.assert_close(batch.teacher_hidden[1], expected.hidden_states[1])
    # The outputs must be usable in a loss that back-propagates into a trained module.
    weight = torch.nn.Parameter(torch.ones(()))
    for value in (batch.teacher_vectors, *batch.teacher_hidden):
        assert not value.is_inference() and not value.requires_grad and value.dtype == torch.float32
        (weight * value).pow(2).mean().backward()
    assert weight.grad is not None and not any(p.requires_grad for p in teacher.parameters())


def test_online_teacher_runs_each_distinct_text_once_and_copies_it_to_its_other_rows(teacher, monkeypatch):
    texts = [TEXTS[1], TEXTS[0], TEXTS[1], TEXTS[2], TEXTS[0]]
    ids = torch.tensor([1, 0, 1, 2, 0])
    seen = []
    real = teacher.forward_tokens
    monkeypatch.setattr(teacher, "forward_tokens", lambda feats, *a: seen.append(len(feats["input_ids"])) or real(feats, *a))
    batch = Batch(texts, text_ids=ids, teacher_features=teacher.tokenize(texts))
    OnlineTeacher(teacher, TeacherNeeds(vectors="online", layers=(-1,))).fill(batch)
    assert seen == [3]  # three distinct texts in five rows
    with torch.no_grad():
        expected = real(teacher.tokenize(texts), (-1,))
    torch.testing.assert_close(batch.teacher_vectors, expected.pooled)
    torch.testing.assert_close(batch.teacher_hidden[0], expected.hidden_states[0])


def test_online_teacher_without_vectors_leaves_the_cached_ones(teacher):
    batch = Batch(TEXTS, teacher_vectors=torch.zeros(4, 2))
    OnlineTeacher(teacher, TeacherNeeds(vectors="none", layers=(-1,))).fill(batch)
    assert torch.equal(batch.teacher_vectors, torch.zeros(4, 2)) and len(batch.teacher_hidden) == 1


def test_provide_loads_eager_attention_only_when_attentions_are_declared(tiny_qwen3, tmp_path):
    cfg = TalasConfig(teacher_model_name=str(tiny_qwen3), device="cpu", cache_path=str(tmp_path / "c.safetensors"))
    plain = provide(cfg, TeacherNeeds(vectors="none", layers=(-1,)), TEXTS, TEXTS, torch.device("cpu"))
    eager = provide(cfg, TeacherNeeds(vectors="none", attention_layers=(-1,)), TEXTS, TEXTS, torch.device("cpu"))
    assert plain.token_encoder.model.config._attn_implementation != "eager"
    assert eager.token_encoder.model.config._attn_implementation == "eager"
    assert plain.cache is None and plain.dim == 48
    none = provide(cfg, TeacherNeeds(vectors="none"), TEXTS, TEXTS, torch.device("cpu"))
    assert none.online is None and none.cache is None and none.dim is None and not (tmp_path / "c.safetensors").exists()


def test_to_device_moves_nested_alignment_dicts():
    span = Alignment(torch.zeros(1, 2, 3), torch.zeros(1, 2, 4), torch.ones(1, 2, dtype=torch.bool))
    batch = Batch(["a"], size=1, alignments={"span": span}, teacher_hidden=(torch.zeros(1, 2, 3),))
    moved = to_device(batch, torch.device("cpu"))
    assert isinstance(moved, Batch) and isinstance(moved.alignments["span"], Alignment) and moved.size == 1
    assert moved.alignments["span"].group_mask.dtype == torch.bool and moved.alignments["span"].teacher_groups.shape == (1, 2, 4)
    assert np.array_equal(moved.alignments["span"].group_mask.numpy(), [[True, True]])
    assert moved.texts == ["a"] and moved.teacher_hidden[0].shape == (1, 2, 3) and moved.features is None
