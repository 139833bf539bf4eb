"""InfoNCE with in-batch negatives, and the duplicate masking that keeps a text from being its own
negative (TALAS's and every method's task loss; TALAS's contrastive term to the teacher)."""

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
