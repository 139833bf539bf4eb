"""talas/align/views.py and groups.py: known-value cases on hand-made views, the tiny fixtures' tokenizers, and a seeded property test.

    .venv/bin/python -m pytest -q tests/unit/test_align.py
"""

from __future__ import annotations

import random

import pytest
from transformers import AutoTokenizer

from talas.align.groups import dtw_groups, edit_distance, mined_pairs, span_groups
from talas.align.views import TokenView, token_view, view_of

# "unbelievable news!" as a WordPiece student and a byte-level BPE teacher (EOS appended) see it.
TEXT = "unbelievable news!"
WP_TOKENS = ["[CLS]", "un", "##bel", "##ievable", "news", "!", "[SEP]"]
WP_OFFSETS = [(0, 0), (0, 2), (2, 5), (5, 12), (13, 17), (17, 18), (0, 0)]
WP_SPECIAL = [1, 0, 0, 0, 0, 0, 1]
BPE_TOKENS = ["unbel", "ievable", "Ġnews", "!", "<|endoftext|>"]
BPE_OFFSETS = [(0, 5), (5, 12), (12, 17), (17, 18), (0, 0)]
BPE_SPECIAL = [0, 0, 0, 0, 1]


def wordpiece():
    return token_view(TEXT, WP_TOKENS, WP_OFFSETS, WP_SPECIAL, lowercase=True)


def bpe():
    return token_view(TEXT, BPE_TOKENS, BPE_OFFSETS, BPE_SPECIAL, lowercase=True)


def view(pieces, roles=None):
    """A view without spans (pieces compared as strings only)."""
    return TokenView(tuple(pieces), ((0, 0),) * len(pieces), tuple(roles or ["text"] * len(pieces)))


# --- edit distance and token views -------------------------------------------------------------------------


@pytest.mark.parametrize(("a", "b", "d"), [("kitten", "sitting", 3), ("", "abc", 3), ("abc", "", 3), ("same", "same", 0),
                                           ("flaw", "lawn", 2), ("東京", "京", 1), ("ab", "ba", 2)])
def test_edit_distance_known_values(a, b, d):
    assert edit_distance(a, b) == d
    assert edit_distance(b, a) == d


def test_edit_distance_matches_the_plain_dynamic_programme():
    def plain(a, b):
        previous = list(range(len(b) + 1))
        for i, ca in enumerate(a, 1):
            current = [i]
            for j, cb in enumerate(b, 1):
                current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
            previous = current
        return previous[-1]

    rng = random.Random(5)
    for _ in range(3000):
        a, b = ("".join(rng.choice("abcé東🙂") for _ in range(rng.randint(0, n))) for n in (12, 12))
        assert edit_distance(a, b) == plain(a, b), (a, b)
    for _ in range(20):  # longer than a machine word: Python ints grow
        a, b = ("".join(rng.choice("ab") for _ in range(rng.randint(60, 150))) for _ in range(2))
        assert edit_distance(a, b) == plain(a, b)


def test_wordpiece_view_takes_pieces_from_the_text():
    v = wordpiece()
    assert v.pieces == ("", "un", "bel", "ievable", "news", "!", "")
    assert v.role == ("bos", "text", "text", "text", "text", "text", "eos")
    assert v.spans[1:6] == ((0, 2), (2, 5), (5, 12), (13, 17), (17, 18))


def test_byte_bpe_view_trims_the_space_of_g_prefixed_tokens():
    v = bpe()
    assert v.pieces == ("unbel", "ievable", "news", "!", "")
    assert v.spans[2] == (13, 17)  # "Ġnews" covers (12, 17): the space is trimmed
    assert v.role[-1] == "eos"


def test_lowercase_and_accents_come_from_the_text():
    # An uncased BERT strips the accent from its token ("cafe") but the piece is the text's "Café", lower-cased.
    v = token_view("Café!", ["[CLS]", "cafe", "!", "[SEP]"], [(0, 0), (0, 4), (4, 5), (0, 0)], [1, 0, 0, 1], lowercase=True)
    assert v.pieces[1:3] == ("café", "!")
    cased = token_view("Café!", ["Café", "!"], [(0, 4), (4, 5)], [0, 0], lowercase=False)
    assert cased.pieces == ("Café", "!")


def test_byte_tokens_of_one_emoji_share_its_span_and_piece():
    # Two byte-level tokens that are not valid UTF-8 alone ("ðŁĺ" + "Ĥ" = 🙂) both carry the emoji.
    text = "a 🙂 b"
    v = token_view(text, ["a", "Ġ", "ðŁĺ", "Ĥ", "Ġb"], [(0, 1), (1, 2), (2, 3), (2, 3), (3, 5)], [0] * 5, lowercase=True)
    assert v.pieces == ("a", "", "🙂", "🙂", "b")
    assert v.spans == ((0, 1), (0, 0), (2, 3), (2, 3), (4, 5))


def test_without_offsets_markers_are_stripped_and_spans_found():
    v = token_view(TEXT, BPE_TOKENS, None, BPE_SPECIAL, lowercase=True)
    assert v.pieces == ("unbel", "ievable", "news", "!", "")
    assert v.spans == ((0, 5), (5, 12), (13, 17), (17, 18), (0, 0))
    w = token_view("Café ▁x", ["[CLS]", "cafe", "##▁x", "[UNK]", "[SEP]"], None, [1, 0, 0, 0, 1], lowercase=True)
    # "cafe" is found on "Café" (accent- and case-folded search); "[UNK]" is not found and keeps its string.
    assert w.spans[1] == (0, 4) and w.pieces[1] == "café"
    assert w.pieces[3] == "[unk]" and w.spans[3] == (0, 0)
    sp = token_view("hello world", ["▁hello", "▁world"], None, [0, 0], lowercase=False)
    assert sp.pieces == ("hello", "world") and sp.spans == ((0, 5), (6, 11))


def test_prompt_tokens_get_their_role_and_text_offsets_are_shifted():
    prompt = "query: "
    v = token_view("hi there", ["query", ":", "Ġhi", "Ġthere", "<|endoftext|>"],
                   [(0, 5), (5, 6), (6, 9), (9, 15), (0, 0)], [0, 0, 0, 0, 1], lowercase=False, prompt_chars=len(prompt))
    assert v.role == ("prompt", "prompt", "text", "text", "eos")
    assert v.spans[2:4] == ((0, 2), (3, 8))  # "Ġhi" straddles the prompt's trailing space: clipped, trimmed
    assert v.pieces[2:4] == ("hi", "there")


def test_special_roles_and_a_name_in_both_sets_decided_by_position():
    both = frozenset({"<|endoftext|>"})
    v = token_view("a", ["<|endoftext|>", "a", "<|endoftext|>", "<pad>"], [(0, 0), (0, 1), (0, 0), (0, 0)], [1, 0, 1, 1],
                   lowercase=False, bos_tokens=both, eos_tokens=both)
    assert v.role == ("bos", "text", "eos", "other")


@pytest.mark.parametrize("call", [
    lambda: token_view("a", ["a"], [(0, 1)], [0, 0], lowercase=True),
    lambda: token_view("a", ["a"], [], [0], lowercase=True),
    lambda: token_view("a", ["q", "a"], None, [0, 0], lowercase=True, prompt_chars=2),
    lambda: TokenView(("a",), ((0, 1),), ("word",)),
    lambda: TokenView(("a",), (), ("text",)),
    lambda: dtw_groups(view(["a"]), view(["a"]), student_weights=[1.0, 2.0]),
    lambda: dtw_groups(view(["a"]), view(["a"]), teacher_weights=[0.0]),
])
def test_bad_input_is_one_clear_value_error(call):
    with pytest.raises(ValueError, match="token_view|TokenView|dtw_groups"):
        call()


# --- the three alignments on known values --------------------------------------------------------------------


def test_span_groups_wordpiece_vs_g_prefixed_bpe():
    assert span_groups(wordpiece(), bpe()) == [((1, 2), (0,)), ((3,), (1,)), ((4,), (2,)), ((5,), (3,)), ((6,), (4,))]


def test_special_tokens_align_only_to_their_own_kind():
    mpnet_like = token_view(TEXT, ["<s>", "unbelievable", "news", "!", "</s>"], [(0, 0), (0, 12), (13, 17), (17, 18), (0, 0)],
                            [1, 0, 0, 0, 1], lowercase=True)
    assert span_groups(wordpiece(), mpnet_like) == [((0,), (0,)), ((1, 2, 3), (1,)), ((4,), (2,)), ((5,), (3,)), ((6,), (4,))]
    assert mined_pairs(wordpiece(), mpnet_like)[:1] == [(0, 0)]
    assert dtw_groups(wordpiece(), mpnet_like)[0] == ((0,), (0,))
    assert dtw_groups(wordpiece(), mpnet_like)[-1] == ((6,), (4,))


def test_truncation_on_the_teacher_side_leaves_the_rest_of_the_student_unaligned():
    # Teacher truncated after "ievable" (its characters end at 12): "news" and "!" start later.
    short = token_view(TEXT, ["unbel", "ievable", "<|endoftext|>"], [(0, 5), (5, 12), (0, 0)], [0, 0, 1], lowercase=True)
    assert span_groups(wordpiece(), short) == [((1, 2), (0,)), ((3,), (1,)), ((6,), (2,))]
    assert dtw_groups(wordpiece(), short) == [((1, 2), (0,)), ((3,), (1,)), ((6,), (2,))]
    assert mined_pairs(wordpiece(), short) == [(2, 0), (3, 1), (6, 2)]
    # A student token straddling the teacher's last character is inside the range and is aligned.
    cut = token_view(TEXT, ["unbel", "iev"], [(0, 5), (5, 8)], [0, 0], lowercase=True)
    assert span_groups(wordpiece(), cut) == [((1, 2), (0,)), ((3,), (1,))]


def test_truncation_on_the_student_side_leaves_the_teacher_rest_unaligned():
    short = token_view(TEXT, ["[CLS]", "un", "[SEP]"], [(0, 0), (0, 2), (0, 0)], [1, 0, 1], lowercase=True)
    assert span_groups(short, bpe()) == [((1,), (0,)), ((2,), (4,))]


def test_dtw_groups_known_path():
    # un+bel match "unbel" (cost 3 + 2), then exact matches (cost 0): the cheapest monotone path.
    assert dtw_groups(wordpiece(), bpe()) == [((1, 2), (0,)), ((3,), (1,)), ((4,), (2,)), ((5,), (3,)), ((6,), (4,))]


def test_dtw_weights_change_the_path():
    s, t = view(["x", "y", "z"]), view(["p", "qq"])
    # ed(y, p) = 1 < ed(y, qq) = 2: y joins p's group; weighting p by 3 makes (y, qq) cheaper (2 < 3).
    assert dtw_groups(s, t) == [((0, 1), (0,)), ((2,), (1,))]
    assert dtw_groups(s, t, teacher_weights=[3.0, 1.0]) == [((0,), (0,)), ((1, 2), (1,))]
    assert dtw_groups(s, t, student_weights=[1, 1, 1], teacher_weights=[3, 1]) == [((0,), (0,)), ((1, 2), (1,))]


def test_dtw_one_to_many_groups_and_the_diagonal_wins_ties():
    assert dtw_groups(view(["ab", "c"]), view(["a", "b", "c"])) == [((0,), (0, 1)), ((1,), (2,))]
    assert dtw_groups(view(["a", "b", "c"]), view(["ab", "c"])) == [((0, 1), (0,)), ((2,), (1,))]
    # The diagonal path (2 + 1 + 2) beats a many-to-many reading (abc = a+b, d+e = cde: 2 + 2 + 2 + 2).
    assert dtw_groups(view(["abc", "d", "e"]), view(["a", "b", "cde"])) == [((0,), (0,)), ((1,), (1,)), ((2,), (2,))]


def test_mined_pairs_known_values_and_ties_by_position():
    assert mined_pairs(wordpiece(), bpe()) == [(2, 0), (3, 1), (4, 2), (5, 3), (6, 4)]
    # "the" occurs twice on each side: each pairs with the occurrence nearest in the text.
    text = "the cat the"
    s = token_view(text, ["the", "cat", "the"], [(0, 3), (4, 7), (8, 11)], [0, 0, 0], lowercase=False)
    t = token_view(text, ["the", "Ġca", "t", "Ġthe"], [(0, 3), (3, 6), (6, 7), (7, 11)], [0, 0, 0, 0], lowercase=False)
    assert mined_pairs(s, t) == [(0, 0), (1, 1), (2, 3)]


def test_empty_sides():
    assert span_groups(view([]), view([])) == []
    assert dtw_groups(view(["", "a"], ["bos", "text"]), view([""], ["bos"])) == [((0,), (0,))]
    assert mined_pairs(view(["a"]), view([])) == []


# --- invariants, shared with tests/slow/test_align_real.py -------------------------------------------------------


def _located(v, k):
    return v.spans[k][1] > v.spans[k][0]


def expected_aligned(v: TokenView, other: TokenView) -> set[int]:
    """The truncation rule restated: located text tokens overlapping the other side's covered character range."""
    located = [other.spans[j] for j in range(len(other)) if other.role[j] == "text" and _located(other, j)]
    if not located:
        return set()
    lo, hi = min(s for s, _ in located), max(e for _, e in located)
    return {k for k in range(len(v)) if v.role[k] == "text" and _located(v, k) and v.spans[k][0] < hi and v.spans[k][1] > lo}


def assert_invariants(s: TokenView, t: TokenView) -> None:
    """(a) covers every aligned token once and joins overlapping ones; (b) monotone and complete; (c) 1-1."""
    kinds_ok = {("bos", "bos"), ("eos", "eos"), ("text", "text")}
    groups = span_groups(s, t)
    s_seen = [i for g in groups for i in g[0]]
    t_seen = [j for g in groups for j in g[1]]
    assert len(s_seen) == len(set(s_seen)) and len(t_seen) == len(set(t_seen)), "a token in two (a) groups"
    for gs, gt in groups:
        assert gs and gt
        assert {(s.role[i], t.role[j]) for i in gs for j in gt} <= kinds_ok
    s_text = {i for i in s_seen if s.role[i] == "text"}
    t_text = {j for j in t_seen if t.role[j] == "text"}
    assert s_text == expected_aligned(s, t), "(a) must cover exactly the student tokens not beyond the truncation"
    assert t_text == expected_aligned(t, s)
    where = {("s", i): n for n, g in enumerate(groups) for i in g[0]} | {("t", j): n for n, g in enumerate(groups) for j in g[1]}
    for i in s_text:
        for j in t_text:
            (a, b), (c, d) = s.spans[i], t.spans[j]
            if a < d and c < b:
                assert where["s", i] == where["t", j], "overlapping tokens in different (a) groups"

    path = dtw_groups(s, t)
    for (gs, gt), (hs, ht) in zip(path, path[1:], strict=False):
        assert max(gs) < min(hs) and max(gt) < min(ht), "(b) not monotone"
    for gs, gt in path:
        assert len(gs) == 1 or len(gt) == 1 or s.role[gs[0]] != "text", "(b) a corner the diagonal should cut"
        assert list(gs) == sorted(gs) and list(gt) == sorted(gt)
        assert {(s.role[i], t.role[j]) for i in gs for j in gt} <= kinds_ok
    dtw_text = {i for g in path for i in g[0] if s.role[i] == "text"}
    assert dtw_text == {i for i in expected_aligned(s, t)} | {
        i for i in range(len(s)) if s.role[i] == "text" and s.pieces[i] and not _located(s, i) and expected_aligned(t, s)}

    pairs = mined_pairs(s, t)
    assert len({i for i, _ in pairs}) == len(pairs) == len({j for _, j in pairs}), "(c) not one-to-one"
    aligned_t = {j for g in path for j in g[1] if t.role[j] == "text"}
    for i, j in pairs:
        assert (s.role[i], t.role[j]) in kinds_ok
        if s.role[i] == "text":
            d = edit_distance(s.pieces[i], t.pieces[j])
            assert all(edit_distance(s.pieces[i], t.pieces[k]) >= d for k in aligned_t), "(c) pair not at minimum distance"
            assert all(edit_distance(s.pieces[k], t.pieces[j]) >= d for k in dtw_text)


def assert_within_unpadded(v: TokenView, groups, side: int) -> None:
    """Pads never aligned: every position indexes the unpadded list and is a text, bos or eos token."""
    for g in groups:
        for k in g[side]:
            assert 0 <= k < len(v) and v.role[k] in ("text", "bos", "eos")


def test_invariants_on_hand_made_views():
    assert_invariants(wordpiece(), bpe())
    assert_invariants(bpe(), wordpiece())


# --- the tiny fixtures' tokenizers: WordPiece (right padding) and byte BPE with EOS (left padding) -------------

HARD_TEXTS = [
    "a man is playing a guitar",
    "Café naïve résumé à la crème",
    "東京は日本の首都です 北京",
    "emoji 🙂👍🏽 and flags 🇫🇷 mixed",
    "numbers 3.14159, 1,000,000 and 42%!",
    "see https://example.org/a/b?c=1&d=2#frag now",
    "pneumonoultramicroscopicsilicovolcanoconiosis antidisestablishmentarianism",
    "punctuation... (really?!) — \"quoted\" 'single' [brackets]",
    "tabs\tand\nnewlines  double  spaces",
    "\u200bzero\u200bwidth and soft\u00adhyphen",
]


@pytest.fixture(scope="module")
def tiny_tokenizers(tiny_bert, tiny_qwen3):
    return AutoTokenizer.from_pretrained(str(tiny_bert)), AutoTokenizer.from_pretrained(str(tiny_qwen3))


@pytest.mark.parametrize("text", HARD_TEXTS)
def test_tiny_fixtures_invariants(tiny_tokenizers, text):
    bert, qwen = tiny_tokenizers
    s, t = view_of(bert, text, lowercase=True), view_of(qwen, text, lowercase=True)
    assert s.role[0] == "bos" and s.role[-1] == "eos" and t.role[-1] == "eos"
    assert_invariants(s, t)
    assert_within_unpadded(s, span_groups(s, t), 0)
    assert_within_unpadded(t, span_groups(s, t), 1)


def test_tiny_fixtures_emoji_does_not_disturb_the_words_after_it(tiny_tokenizers):
    bert, qwen = tiny_tokenizers
    text = "🙂👍🏽 a man is playing"
    s, t = view_of(bert, text, lowercase=True), view_of(qwen, text, lowercase=True)
    words = {"".join(s.pieces[i] for i in gs): "".join(dict.fromkeys(t.pieces[j] for j in gt)) for gs, gt in span_groups(s, t)}
    for word in ("a", "man", "is", "playing"):
        assert words[word] == word
    assert words["🙂👍🏽"] == "🙂👍🏽" or all(k in words for k in ("🙂", "👍", "🏽"))


@pytest.mark.parametrize("side", ["student", "teacher"])
def test_tiny_fixtures_truncated_on_one_side(tiny_tokenizers, side):
    bert, qwen = tiny_tokenizers
    text = "two dogs run across the field and children are playing in the park"
    s = view_of(bert, text, lowercase=True, max_length=6 if side == "student" else None)
    t = view_of(qwen, text, lowercase=True, max_length=6 if side == "teacher" else None)
    assert_invariants(s, t)
    short, long_ = (s, t) if side == "student" else (t, s)
    end = max(e for e in (sp[1] for sp in short.spans))
    groups = span_groups(s, t)
    long_side = 1 if side == "student" else 0
    aligned = {k for g in groups for k in g[long_side] if long_.role[k] == "text"}
    beyond = {k for k in range(len(long_)) if long_.role[k] == "text" and long_.spans[k][0] >= end}
    assert beyond and not aligned & beyond
    assert aligned  # the common beginning is still aligned


def test_tiny_fixtures_batch_padding_does_not_enter_the_views(tiny_tokenizers):
    # Positions index each text's unpadded list; a padded batch (left for Qwen) holds exactly those ids.
    bert, qwen = tiny_tokenizers
    texts = ["a man", "the cat sits on the mat"]
    batch = qwen(texts, padding=True)
    for row, text in zip(batch["input_ids"], texts, strict=True):
        v = view_of(qwen, text, lowercase=True)
        pads = len(row) - len(v)
        assert row[:pads] == [qwen.pad_token_id] * pads
        assert qwen.convert_ids_to_tokens(row[pads:])[-1] == "<|endoftext|>" and v.role[-1] == "eos"


def _random_text(rng: random.Random) -> str:
    pools = ["abcdefghijklmnopqrstuvwxyz", "ABCXYZ", "0123456789", " ", "  \t\n", ".,;:!?'\"()-/", "éèàïçñøß",
             "東京日本語中文", "🙂👍🏽🇫🇷❤️", "\u200b\u00ad\u0301", "αβγδЖЯ"]
    return "".join(rng.choice(rng.choice(pools)) for _ in range(rng.randint(0, 60)))


def test_property_invariants_on_random_unicode(tiny_tokenizers):
    bert, qwen = tiny_tokenizers
    rng = random.Random(1234)
    for _ in range(150):
        text = _random_text(rng)
        s_len, t_len = rng.choice([None, None, 5, 12]), rng.choice([None, None, 5, 12])
        s = view_of(bert, text, lowercase=True, max_length=s_len)
        t = view_of(qwen, text, lowercase=True, max_length=t_len)
        assert_invariants(s, t)
        assert_invariants(t, s)
