"""Pure loss functions on tensors. Shapes in the docstrings; known-value tests in tests/test_losses.py.

Every method composes these; nothing here knows about models, batches or configs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(
    anchors: torch.Tensor,
    positives: torch.Tensor,
    temperature: float,
    negatives: torch.Tensor | None = None,
    anchor_ids: torch.Tensor | None = None,
    positive_ids: torch.Tensor | None = None,
    negative_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric InfoNCE with in-batch negatives (and optional hard negatives).

    anchors, positives: [B, D]; negatives: [K, D] extra candidates for the anchor→positive
    direction. Vectors are L2-normalised here. ``*_ids`` ([B], [B], [K]) identify texts: a candidate
    whose text equals the row's positive (or, in the reverse direction, the row's anchor) is a
    duplicate, not a negative, and is masked out. Returns a scalar:
    ½·[CE(n(a)·n([p; neg])ᵀ/τ, diag) + CE(n(p)·n(a)ᵀ/τ, diag)].
    """
    a = F.normalize(anchors, dim=-1)
    p = F.normalize(positives, dim=-1)
    candidates = p if negatives is None or negatives.shape[0] == 0 else torch.cat([p, F.normalize(negatives, dim=-1)])
    target = torch.arange(a.shape[0], device=a.device)
    forward_logits = a @ candidates.T / temperature
    backward_logits = p @ a.T / temperature
    if positive_ids is not None:
        cand_ids = positive_ids if candidates.shape[0] == a.shape[0] else torch.cat([positive_ids, negative_ids])
        forward_logits = mask_duplicates(forward_logits, positive_ids, cand_ids)
    if anchor_ids is not None:
        backward_logits = mask_duplicates(backward_logits, anchor_ids, anchor_ids)
    return 0.5 * (F.cross_entropy(forward_logits, target) + F.cross_entropy(backward_logits, target))


def mask_duplicates(logits: torch.Tensor, row_target_ids: torch.Tensor, column_ids: torch.Tensor) -> torch.Tensor:
    """Set logits[i, j] to -inf where column j holds the same text as row i's target, j ≠ i.

    logits: [B, C]; row_target_ids: [B]; column_ids: [C]. The diagonal (the target) is kept.
    """
    same = row_target_ids.unsqueeze(1) == column_ids.unsqueeze(0)
    same[torch.arange(logits.shape[0]), torch.arange(logits.shape[0])] = False
    return logits.masked_fill(same, float("-inf"))


def normalized_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """MSE(n(student), n(teacher)), averaged over all B·D entries (the seed's KD term).

    student, teacher: [B, D] (same D: project the student first). Equals 2·(1 − mean cos)/D.
    """
    return F.mse_loss(F.normalize(student.float(), dim=-1), F.normalize(teacher.float(), dim=-1))


def cosine_distance(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """mean_b (1 − cos(student_b, teacher_b)); student, teacher: [B, D]."""
    return (1.0 - F.cosine_similarity(student.float(), teacher.float(), dim=-1)).mean()
