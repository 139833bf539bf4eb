"""Turn example indices into training batches: epoch order, tokenised texts, teacher vectors.

Order is a pure function of (seed, epoch), never of global RNG state, so a resumed run sees the
same batches as an uninterrupted one; in a distributed run each rank takes every world-th batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from talas.cache import TeacherCache
from talas.data import TrainingData
from talas.encoders import Encoder


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


class PairCollator:
    """Builds a batch dict from example indices.

    Texts are laid out [anchors (B); positives (B); hard negatives (K ≤ B)] (anchors only with
    ``single_view``) and tokenised together for one student forward pass. ``text_ids`` index ``data.unique_texts()`` (duplicate masking).
    With a cache, ``teacher`` holds each text's cached vector and ``teacher_mask`` which texts
    have one.
    """

    def __init__(
        self, data: TrainingData, student: Encoder, cache: TeacherCache | None = None,
        cache_rows: np.ndarray | None = None, single_view: bool = False,
    ):
        # single_view: single-text data whose method needs no contrastive pair; the positive view
        # would be the same text again, so it is not sent through the student at all.
        self.single_view = single_view and data.kind == "single"
        self.unique = data.unique_texts()
        self.anchor_ids, self.positive_ids, self.negative_ids = (np.asarray(x, dtype=np.int64) for x in data.text_ids())
        self.student = student
        self.cache = cache
        self.cache_rows = cache_rows

    def __call__(self, indices: Sequence[int]) -> dict:
        idx = np.asarray(indices, dtype=np.int64)
        negatives = self.negative_ids[idx]
        if self.single_view:
            ids = self.anchor_ids[idx]
        else:
            ids = np.concatenate([self.anchor_ids[idx], self.positive_ids[idx], negatives[negatives >= 0]])
        texts = [self.unique[i] for i in ids]
        batch = {"features": self.student.tokenize(texts), "size": len(idx), "text_ids": torch.from_numpy(ids),
                 "texts": texts, "single_view": self.single_view}
        if self.cache is not None:
            rows = self.cache_rows[ids]
            present = rows >= 0
            teacher = torch.zeros(len(ids), self.cache.dim)
            if present.any():
                teacher[torch.from_numpy(present)] = self.cache.gather(rows[present])
            batch["teacher"], batch["teacher_mask"] = teacher, torch.from_numpy(present)
        return batch


def to_device(batch: dict, device: torch.device) -> dict:
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            out[key] = value.to(device, non_blocking=True)
        elif isinstance(value, dict):
            out[key] = {k: v.to(device, non_blocking=True) for k, v in value.items()}
        else:
            out[key] = value
    return out
