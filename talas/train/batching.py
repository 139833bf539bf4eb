"""Turn example indices into training batches: epoch order, tokenised texts, teacher vectors,
the teacher's tokenization and token alignments.

Order is a pure function of (seed, epoch), never of global RNG state, so a resumed run sees the
same batches as an uninterrupted one; in a distributed run each rank takes every world-th batch.
A text's tokenizations and alignments never change, so the collator computes them once per unique
text (memoised by text id) and only pads and packs them per batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from talas.align.groups import Group
from talas.align.views import encoding_view
from talas.cache.format import TeacherCache
from talas.data.batch import Alignment, Batch
from talas.data.examples import TrainingData
from talas.models.encoder import Encoder, TokenEncoding
from talas.teacher.provision import Aligner


def epoch_batches(
    n: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1, lengths: np.ndarray | None = None
) -> list[list[int]]:
    """This rank's batches of example indices for one epoch (same count on every rank).

    With ``lengths``, batches are length-grouped: the shuffled order is cut into windows of 64
    batches, each window sorted by length and cut into batches, and the batch order shuffled
    again. Batches then hold texts of similar length (little padding: several times faster on
    short-text data) while staying random in content and order.
    """
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(n, generator=generator).numpy()
    if lengths is not None:
        window = 64 * batch_size
        order = np.concatenate([w[np.argsort(-lengths[w], kind="stable")] for w in np.array_split(order, max(1, -(-n // window)))])
    batches = [order[i : i + batch_size].tolist() for i in range(0, n, batch_size)]
    if lengths is not None:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    usable = len(batches) - len(batches) % world if world > 1 else len(batches)
    return batches[rank:usable:world]


def example_lengths(data: TrainingData) -> np.ndarray:
    """Characters per example (anchor + positive + negative): a cheap proxy for its token count."""
    unique = np.fromiter((len(t) for t in data.unique_texts()), dtype=np.int64)
    anchors, positives, negatives = (np.asarray(x, dtype=np.int64) for x in data.text_ids())
    return np.maximum(unique[anchors], unique[positives]) + np.where(negatives >= 0, unique[np.maximum(negatives, 0)], 0)


@dataclass(frozen=True)
class TextTokens:
    """One unique text's student and teacher ids and, per alignment, its groups as flat index arrays
    (group number and unpadded position of every member, student side then teacher side)."""

    student_ids: tuple[int, ...]
    teacher_ids: tuple[int, ...]
    groups: dict[str, tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]


def flatten_groups(groups: Sequence[Group]) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    s_group = [g for g, (s, _) in enumerate(groups) for _ in s]
    s_pos = [p for s, _ in groups for p in s]
    t_group = [g for g, (_, t) in enumerate(groups) for _ in t]
    t_pos = [p for _, t in groups for p in t]
    return len(groups), *(np.asarray(x, dtype=np.int64) for x in (s_group, s_pos, t_group, t_pos))


def pack_alignment(entries: Sequence[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
                   student_lengths: Sequence[int], student_width: int, student_left: bool,
                   teacher_lengths: Sequence[int], teacher_width: int, teacher_left: bool) -> Alignment:
    """Dense 0/1 membership of padded token positions in each text's groups (see ``Alignment``).
    Positions shift right by the padding of left-padded rows."""
    b = len(entries)
    g = max([e[0] for e in entries], default=0) or 1
    out = {"student_groups": torch.zeros(b, g, student_width), "teacher_groups": torch.zeros(b, g, teacher_width),
           "group_mask": torch.zeros(b, g, dtype=torch.bool)}
    for side, lengths, width, left, (gi, pi) in (
        ("student_groups", student_lengths, student_width, student_left, (1, 2)),
        ("teacher_groups", teacher_lengths, teacher_width, teacher_left, (3, 4)),
    ):
        rows = np.concatenate([np.full(len(e[gi]), r) for r, e in enumerate(entries)] or [np.zeros(0, np.int64)])
        groups = np.concatenate([e[gi] for e in entries] or [np.zeros(0, np.int64)])
        shift = [width - n if left else 0 for n in lengths]
        positions = np.concatenate([e[pi] + shift[r] for r, e in enumerate(entries)] or [np.zeros(0, np.int64)])
        out[side][torch.from_numpy(rows), torch.from_numpy(groups), torch.from_numpy(positions)] = 1.0
    for r, e in enumerate(entries):
        out["group_mask"][r, : e[0]] = True
    return Alignment(**out)


class PairCollator:
    """Builds a Batch from example indices.

    Texts are laid out [anchors (B); positives (B); hard negatives (K ≤ B)] (anchors only with
    ``single_view``) and tokenised together for one student forward pass. ``text_ids`` index ``data.unique_texts()`` (duplicate masking).
    With a cache, ``teacher_vectors`` holds each text's cached vector and ``teacher_mask`` which texts
    have one. With an online ``teacher``, ``teacher_features`` holds its token ids for the same
    texts (its prompt, EOS and padding side), and with ``aligners`` ``alignments[name]`` holds the
    packed groups of each (see ``pack_alignment``).
    """

    def __init__(
        self, data: TrainingData, student: Encoder, cache: TeacherCache | None = None,
        cache_rows: np.ndarray | None = None, single_view: bool = False,
        teacher: Encoder | None = None, aligners: Mapping[str, Aligner] | None = None,
    ):
        # single_view: single-text data whose method needs no contrastive pair; the positive view
        # would be the same text again, so it is not sent through the student at all.
        self.single_view = single_view and data.kind == "single"
        self.unique = data.unique_texts()
        self.anchor_ids, self.positive_ids, self.negative_ids = (np.asarray(x, dtype=np.int64) for x in data.text_ids())
        self.student = student
        self.cache = cache
        self.cache_rows = cache_rows
        self.teacher = teacher
        self.aligners = dict(aligners or {})
        self.memo: dict[int, TextTokens] = {}
        self.lowercase = student.uncased if self.aligners else False

    def text_tokens(self, ids: Sequence[int]) -> list[TextTokens]:
        """Each text's TextTokens, computing (in one tokenizer call per side) those not seen before."""
        new = sorted({int(i) for i in ids if int(i) not in self.memo})
        if new:
            texts = [self.unique[i] for i in new]
            for i, text, s, t in zip(new, texts, self.student.token_encodings(texts), self.teacher.token_encodings(texts), strict=True):
                self.memo[i] = self.align(text, s, t)
        return [self.memo[int(i)] for i in ids]

    def align(self, text: str, student: TokenEncoding, teacher: TokenEncoding) -> TextTokens:
        groups = {}
        if self.aligners:
            views = [encoding_view(text, enc, lowercase=self.lowercase, prompt_chars=len(encoder.prompt))
                     for enc, encoder in ((student, self.student), (teacher, self.teacher))]
            groups = {name: flatten_groups(fn(*views)) for name, fn in self.aligners.items()}
        return TextTokens(student.ids, teacher.ids, groups)

    def add_tokens(self, batch: Batch, ids: np.ndarray) -> None:
        """Student features from the memo (the same ids as tokenize()), teacher features, alignments."""
        entries = self.text_tokens(ids)
        batch.features = self.student.pad([e.student_ids for e in entries])
        batch.teacher_features = self.teacher.pad([e.teacher_ids for e in entries])
        if self.aligners:
            s_len, t_len = [len(e.student_ids) for e in entries], [len(e.teacher_ids) for e in entries]
            s_width, t_width = batch.features["input_ids"].shape[1], batch.teacher_features["input_ids"].shape[1]
            s_left = self.student.tokenizer.padding_side == "left"
            t_left = self.teacher.tokenizer.padding_side == "left"
            batch.alignments = {
                name: pack_alignment([e.groups[name] for e in entries], s_len, s_width, s_left, t_len, t_width, t_left)
                for name in self.aligners
            }

    def __call__(self, indices: Sequence[int]) -> Batch:
        idx = np.asarray(indices, dtype=np.int64)
        negatives = self.negative_ids[idx]
        if self.single_view:
            ids = self.anchor_ids[idx]
        else:
            ids = np.concatenate([self.anchor_ids[idx], self.positive_ids[idx], negatives[negatives >= 0]])
        texts = [self.unique[i] for i in ids]
        batch = Batch(texts, size=len(idx), text_ids=torch.from_numpy(ids), single_view=self.single_view)
        if self.teacher is not None:
            self.add_tokens(batch, ids)
        else:
            batch.features = self.student.tokenize(texts)
        if self.cache is not None:
            rows = self.cache_rows[ids]
            present = rows >= 0
            teacher = torch.zeros(len(ids), self.cache.dim)
            if present.any():
                teacher[torch.from_numpy(present)] = self.cache.gather(rows[present])
            batch.teacher_vectors, batch.teacher_mask = teacher, torch.from_numpy(present)
        return batch

