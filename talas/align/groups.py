"""Cross-tokenizer token alignment: which student tokens and which teacher tokens carry the same text.

    span_groups(student_view, teacher_view)    # [((1, 2), (0,)), ...]: (student positions, teacher positions)

Pure functions on two ``TokenView``s (talas.align.views; no torch, no model calls). The collator
(talas.train.batching) calls them once per unique text and packs the result into batch tensors; no
method aligns inside its step. Positions index the UNPADDED token list of each model for that text
(special and prompt tokens included), so the caller shifts them for left padding.

- **Special tokens** are aligned only to their own kind: all student "bos" tokens with all teacher
  "bos" tokens as one group (first in the list), likewise "eos" (last); a side without one has
  no such group. "prompt" and "other" tokens and pads are never aligned.
- **Truncation.** A text token is *beyond the other side's truncation* when its span does not
  overlap the character range the other side covers (from the start of its first located text
  token to the end of its last). Such tokens are aligned by no method; every other located text
  token with a piece is in exactly one group of (a) and of (b).

The three alignments, each over the text tokens with a non-empty piece that are not beyond the
other side's truncation:

(a) ``span_groups``: connected components of "the character spans overlap" (many-to-many, exact
    where offsets exist). A token whose characters the other tokenizer dropped (e.g. a zero-width
    character BERT removes) joins the component of the other side's nearest token.
(b) ``dtw_groups``: dynamic time warping over the two piece sequences with cost
    ``edit_distance(piece_s, piece_t) * w_s * w_t`` (CDM; optional per-token weights); the path's
    runs between diagonal steps are the groups, so the groups are contiguous and monotone, and
    each is one-to-many or many-to-one (costs are >= 0, so a corner never beats the diagonal).
    Faithful to CDM, it suits tokenizers of similar granularity; where one side splits words far
    finer (byte-level BPE with a small vocabulary), many cells cost more than few and the path
    drifts: use (a) there.
(c) ``mined_pairs``: for each token the other side's token at minimum edit distance (ties: the one
    nearest in the text), kept only where the choice is mutual (EMO's MinED map): one-to-one.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from talas.align.views import TokenView

#: (student token positions, teacher token positions) of one aligned group, in unpadded token lists.
Group = tuple[tuple[int, ...], tuple[int, ...]]


@lru_cache(maxsize=1 << 18)
def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insert, delete, substitute: 1 each); memoised, pieces repeat across texts.

    Bit-parallel (Myers 1999, Hyyrö 2001): one Python int holds a column of the DP table as bits,
    so a pair costs O(len(b)) integer operations instead of O(len(a) * len(b)) list updates (4x faster
    on word pieces; checked against the plain DP in tests/unit/test_align.py).
    """
    if a == b:
        return 0
    if not a or not b:
        return len(a) + len(b)
    match: dict[str, int] = {}
    for i, c in enumerate(a):
        match[c] = match.get(c, 0) | (1 << i)
    mask, top = (1 << len(a)) - 1, 1 << (len(a) - 1)
    plus, minus, score = mask, 0, len(a)  # vertical +1 / -1 deltas of the current column
    for c in b:
        eq = match.get(c, 0)
        xv = eq | minus
        xh = (((eq & plus) + plus) ^ plus) | eq
        h_plus = minus | (~(xh | plus) & mask)
        h_minus = plus & xh
        if h_plus & top:
            score += 1
        elif h_minus & top:
            score -= 1
        h_plus = ((h_plus << 1) | 1) & mask  # | 1: row 0 of the table grows by one per character of b
        h_minus = (h_minus << 1) & mask
        plus = h_minus | (~(xv | h_plus) & mask)
        minus = h_plus & xv
    return score


def _covered_range(view: TokenView) -> tuple[int, int] | None:
    located = [sp for sp, r in zip(view.spans, view.role, strict=True) if r == "text" and sp[1] > sp[0]]
    if not located:
        return None
    return min(s for s, _ in located), max(e for _, e in located)


def aligned_positions(view: TokenView, other: TokenView) -> list[int]:
    """Positions of ``view``'s text tokens that the alignments use: a piece, not beyond ``other``'s truncation.

    A token with a span is beyond the truncation when the span does not overlap the character range
    ``other`` covers; a token without a span (slow tokenizer, piece not found) is kept. When ``other``
    has no located token at all, nothing can be judged and every token with a piece is kept.
    """
    rng = _covered_range(other)
    keep = []
    for k, (piece, (start, end), role) in enumerate(zip(view.pieces, view.spans, view.role, strict=True)):
        if role != "text" or not piece:
            continue
        if rng is not None and end > start and not (start < rng[1] and end > rng[0]):
            continue
        keep.append(k)
    return keep


def _special_groups(student: TokenView, teacher: TokenView) -> tuple[list[Group], list[Group]]:
    """([bos group] or [], [eos group] or []): each side's specials of one kind, aligned together."""
    out = []
    for kind in ("bos", "eos"):
        s = tuple(k for k, r in enumerate(student.role) if r == kind)
        t = tuple(k for k, r in enumerate(teacher.role) if r == kind)
        out.append([(s, t)] if s and t else [])
    return out[0], out[1]


def span_groups(student: TokenView, teacher: TokenView) -> list[Group]:
    """(a) Groups of tokens whose character spans overlap (connected components), in text order.

    Every located text token of either side that is not beyond the other side's truncation is in
    exactly one group; special tokens as in the module docstring.
    """
    s_pos = [k for k in aligned_positions(student, teacher) if student.spans[k][1] > student.spans[k][0]]
    t_pos = [k for k in aligned_positions(teacher, student) if teacher.spans[k][1] > teacher.spans[k][0]]
    parent = {("s", k): ("s", k) for k in s_pos} | {("t", k): ("t", k) for k in t_pos}

    def find(node):
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    def union(a, b):
        parent[find(a)] = find(b)

    # Sweep over span starts; "active" holds the other side's spans that may still overlap.
    events = sorted([(*student.spans[k], "s", k) for k in s_pos] + [(*teacher.spans[k], "t", k) for k in t_pos])
    active: dict[str, list[tuple[int, int]]] = {"s": [], "t": []}
    linked = set()
    for start, end, side, k in events:
        other = "t" if side == "s" else "s"
        active[other] = [(e, j) for e, j in active[other] if e > start]
        for _, j in active[other]:
            union((side, k), (other, j))
            linked.update({(side, k), (other, j)})
        active[side].append((end, k))
    # Characters one tokenizer dropped: attach such a token to the other side's nearest token.
    for side, own, view, other_pos, other_view, other_side in (
        ("s", s_pos, student, t_pos, teacher, "t"),
        ("t", t_pos, teacher, s_pos, student, "s"),
    ):
        for k in own:
            if (side, k) in linked or not other_pos:
                continue
            start, end = view.spans[k]
            nearest = min(other_pos, key=lambda j: (max(other_view.spans[j][0] - end, start - other_view.spans[j][1], 0), j))
            union((side, k), (other_side, nearest))
    components: dict[tuple[str, int], tuple[list[int], list[int]]] = {}
    for node in parent:
        members = components.setdefault(find(node), ([], []))
        members[0 if node[0] == "s" else 1].append(node[1])
    text_groups = sorted((tuple(sorted(s)), tuple(sorted(t))) for s, t in components.values())
    bos, eos = _special_groups(student, teacher)
    return bos + text_groups + eos


def _cost_matrix(student: TokenView, s_pos: list[int], teacher: TokenView, t_pos: list[int]) -> list[list[int]]:
    """Edit distances between the pieces at ``s_pos`` and ``t_pos`` (each distinct pair computed once)."""
    t_pieces = [teacher.pieces[j] for j in t_pos]
    rows: dict[str, list[int]] = {}
    out = []
    for i in s_pos:
        piece = student.pieces[i]
        if piece not in rows:
            rows[piece] = [edit_distance(piece, q) for q in t_pieces]
        out.append(rows[piece])
    return out


def _check_weights(weights, view: TokenView, side: str) -> None:
    if weights is not None and (len(weights) != len(view) or any(not w > 0 for w in weights)):
        raise ValueError(f"dtw_groups: {side}_weights must hold one positive weight per token ({len(view)}), "
                         f"got {len(weights)} values (min {min(weights, default=None)}).")


def dtw_groups(
    student: TokenView,
    teacher: TokenView,
    student_weights: Sequence[float] | None = None,
    teacher_weights: Sequence[float] | None = None,
) -> list[Group]:
    """(b) Monotone groups from DTW over the pieces, cost ``edit_distance * w_s * w_t`` (CDM).

    Weights are per token of the whole unpadded list (specials included, ignored); None = 1. The path
    pairs every aligned token of both sides; consecutive pairs that share a token form one group, so
    consecutive groups are strictly increasing on both sides. Ties prefer the diagonal step.
    """
    _check_weights(student_weights, student, "student")
    _check_weights(teacher_weights, teacher, "teacher")
    s_pos, t_pos = aligned_positions(student, teacher), aligned_positions(teacher, student)
    bos, eos = _special_groups(student, teacher)
    if not s_pos or not t_pos:
        return bos + eos
    dist = _cost_matrix(student, s_pos, teacher, t_pos)
    ws = [1.0] * len(s_pos) if student_weights is None else [float(student_weights[i]) for i in s_pos]
    wt = [1.0] * len(t_pos) if teacher_weights is None else [float(teacher_weights[j]) for j in t_pos]
    n, m = len(s_pos), len(t_pos)
    acc = [[0.0] * m for _ in range(n)]
    for i in range(n):
        row, here, w = dist[i], acc[i], ws[i]
        up = acc[i - 1] if i else None
        for j in range(m):
            if i and j:
                best = min(up[j - 1], up[j], here[j - 1])
            elif i:
                best = up[j]
            elif j:
                best = here[j - 1]
            else:
                best = 0.0
            here[j] = best + row[j] * w * wt[j]
    i, j = n - 1, m - 1
    runs = [([i], [j])]
    while i or j:
        if i and j:
            diag, up_, left = acc[i - 1][j - 1], acc[i - 1][j], acc[i][j - 1]
            if diag <= up_ and diag <= left:
                i, j = i - 1, j - 1
                runs.append(([], []))
            elif up_ <= left:
                i -= 1
            else:
                j -= 1
        elif i:
            i -= 1
        else:
            j -= 1
        s_run, t_run = runs[-1]
        if not s_run or s_run[-1] != i:
            s_run.append(i)
        if not t_run or t_run[-1] != j:
            t_run.append(j)
    text_groups = [(tuple(s_pos[a] for a in reversed(s)), tuple(t_pos[b] for b in reversed(t))) for s, t in reversed(runs)]
    return bos + text_groups + eos


def mined_pairs(student: TokenView, teacher: TokenView) -> list[tuple[int, int]]:
    """(c) One-to-one (student, teacher) position pairs: mutual minimum edit distance (EMO's MinED).

    Ties go to the candidate nearest in the text (span centres when every aligned token has a span,
    else relative rank). Special tokens pair with their own kind, first with first; sorted by student position.
    """
    s_pos, t_pos = aligned_positions(student, teacher), aligned_positions(teacher, student)
    bos, eos = _special_groups(student, teacher)
    pairs = [p for s, t in bos + eos for p in zip(s, t, strict=False)]  # extra specials on one side stay unpaired
    if s_pos and t_pos:
        dist = _cost_matrix(student, s_pos, teacher, t_pos)
        where_s, where_t = _positions(student, s_pos), _positions(teacher, t_pos)
        if where_s is None or where_t is None:
            where_s = [(a + 0.5) / len(s_pos) for a in range(len(s_pos))]
            where_t = [(b + 0.5) / len(t_pos) for b in range(len(t_pos))]
        columns = [list(col) for col in zip(*dist, strict=True)]
        best_t = [_nearest_minimum(row, where_t, where_s[a]) for a, row in enumerate(dist)]
        best_s = [_nearest_minimum(col, where_s, where_t[b]) for b, col in enumerate(columns)]
        pairs += [(s_pos[a], t_pos[b]) for a, b in enumerate(best_t) if best_s[b] == a]
    return sorted(pairs)


def _nearest_minimum(distances: list[int], where: list[float], here: float) -> int:
    """Index of the smallest distance; among equals the one nearest ``here``, then the first."""
    low = min(distances)
    ties = [k for k, d in enumerate(distances) if d == low]
    return ties[0] if len(ties) == 1 else min(ties, key=lambda k: abs(where[k] - here))


def _positions(view: TokenView, positions: list[int]) -> list[float] | None:
    """Span centres of ``positions``, or None when one of them has no span."""
    spans = [view.spans[k] for k in positions]
    if any(e <= s for s, e in spans):
        return None
    return [(s + e) / 2 for s, e in spans]
