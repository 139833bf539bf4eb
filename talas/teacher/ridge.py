"""Ridge starts that need the online teacher: run it and the untrained student on a sample of the
training texts (one teacher forward per sampled text), then fit a projection between their states
(talas.models.projection.fit_linear). Used by DSKD's, CDM's and EMO's ``initialise``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from talas.data.batch import Batch
from talas.models.encoder import pool
from talas.models.projection import DIRECTIONS, fit_linear, sample_rows
from talas.teacher.provision import TeacherSupply

SAMPLE_BATCH = 64


Reduce = Callable[[Batch, object], Sequence[torch.Tensor]]


@torch.no_grad()
def sample_online_states(student, supply: TeacherSupply, texts: Sequence[str], reduce: Reduce) -> list[torch.Tensor]:
    """Runs the online teacher (``supply.fill``) and the untrained student (eval mode) on ``texts`` in
    batches; ``reduce(batch, student_output)`` gives per-text rows, concatenated per position (float32)."""
    parts: list[list[torch.Tensor]] = []
    was_training = student.training
    student.eval()
    try:
        for start in range(0, len(texts), SAMPLE_BATCH):
            batch = Batch(list(texts[start : start + SAMPLE_BATCH]))
            supply.fill(batch)
            batch.features = {k: v.to(student.device) for k, v in student.tokenize(batch.texts).items()}
            rows = reduce(batch, student.forward_tokens(batch.features))
            parts = parts or [[] for _ in rows]
            for part, row in zip(parts, rows, strict=True):
                part.append(row.float())
    finally:
        student.train(was_training)
    return [torch.cat(part) for part in parts]


def fit_mean_states(linear: nn.Linear, direction: str, student, supply: TeacherSupply, texts: Sequence[str], size: int, seed: int) -> tuple[int, float]:
    """Ridge start of a token-state projection (CDM's and EMO's P), in either direction.

    Fitted between the two models' mean last-layer token states of ``size`` sampled texts: the mean
    is linear, so a map that carries mean states carries token states as far as one linear map can,
    and it needs no token alignment. Uses the first declared teacher layer. Returns (texts, mean cosine).
    """
    sample = [texts[i] for i in sample_rows(len(texts), size, seed)]

    def reduce(batch: Batch, out):
        t_mask = batch.teacher_features["attention_mask"]
        return pool(batch.teacher_hidden[0], t_mask, "mean"), pool(out.tokens, batch.features["attention_mask"], "mean")

    teacher_means, student_means = sample_online_states(student, supply, sample, reduce)
    x, y = (teacher_means, student_means) if direction == DIRECTIONS[0] else (student_means, teacher_means)
    return len(sample), fit_linear(linear, x, y)
