"""Token-state terms: averages over aligned token groups and their distance (CDM), CDM's entropy
weights, and DSKD's per-sentence scaling and cross-model attention."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def group_mean(groups: torch.Tensor, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Average token states within aligned groups (the collator's packed alignments).

    groups: [B, G, L] 0/1 membership of each padded position in each group; states: [B, L, D].
    Returns (means [B, G, D], nonempty [B, G] bool); an empty group's mean is 0 and it is not
    nonempty. Two batched matmuls, no Python loop over texts or groups.
    """
    groups = groups.to(states.dtype)
    count = groups.sum(-1, keepdim=True)
    return (groups @ states) / count.clamp(min=1), count[..., 0] > 0


GROUP_LOSSES = ("mse", "mse_elementwise", "relative")


def cdm_group_mse(student: torch.Tensor, teacher: torch.Tensor, valid: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """L_cdm over the valid groups of a batch; student, teacher: [B, G, D] group means (one side already
    projected into the other's width); valid: [B, G] bool (groups non-empty on both sides).

    "mse": mean over groups of ‖n(teacher) − n(student)‖² (= 2(1 − cos), whatever D is, as
    normalized_mse); "mse_elementwise": its mean over the D entries (1/D of it); "relative": the
    states as they are, Σ‖teacher − student‖² / Σ‖teacher‖² (the denominator a constant). Normalising
    each group hides the text's mean state; without it the squared distances of a text's groups sum to
    its groups' spread plus (number of groups)·‖mean difference‖², and with one-to-one groups the mean
    state is the mean-pooled sentence vector. No valid group → 0 (still in the graph).
    """
    weight = valid.to(student.dtype)
    if kind == "relative":
        squared = (teacher - student).pow(2).sum(-1)
        scale = (teacher.detach().pow(2).sum(-1) * weight).sum().clamp(min=1e-12)
        return (squared * weight).sum() / scale
    diff = F.normalize(teacher, dim=-1) - F.normalize(student, dim=-1)
    per_group = diff.pow(2).mean(-1) if kind == "mse_elementwise" else diff.pow(2).sum(-1)
    return (per_group * weight).sum() / weight.sum().clamp(min=1.0)


def center_groups(states: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """states minus their mean over the valid groups of the whole batch (a shared direction removed).

    states: [B, G, D]; valid: [B, G] bool. Invalid groups are returned centred too (they are masked
    later). Last-layer token states share a large common component; matched after normalisation
    as they are, a student can lower the loss by aligning every token with it (CDM's measured failure).
    """
    weight = valid.to(states.dtype).unsqueeze(-1)
    mean = (states * weight).sum((0, 1)) / weight.sum().clamp(min=1.0)
    return states - mean


def cdm_entropy_weights(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """CDM's per-token weights w = floor(3 + 3·sigmoid(4·Ĥ − 2)) ∈ {3, 4, 5}; 0 on padding.

    logits: [B, L, V] (an MLM head's or pseudo-logits); mask: [B, L] 1 = real token. Ĥ is each
    token's entropy min–max normalised over the real tokens of its own sequence (a sequence whose
    tokens all have the same entropy gets Ĥ = 0, weight 3). Used once per text for the DTW costs.
    """
    logp = torch.log_softmax(logits.float(), dim=-1)
    entropy = -(logp.exp() * logp).sum(-1)
    real = mask.bool()
    low = entropy.masked_fill(~real, float("inf")).amin(-1, keepdim=True)
    high = entropy.masked_fill(~real, float("-inf")).amax(-1, keepdim=True)
    norm = ((entropy - low) / (high - low).clamp(min=1e-12)).clamp(0.0, 1.0)
    weights = torch.floor(3.0 + 3.0 * torch.sigmoid(4.0 * norm - 2.0))
    return weights.masked_fill(~real, 0.0)


def std_scaled(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Divide each sequence's states by their standard deviation over its real tokens (all features).

    states: [B, L, D]; mask: [B, L] 1 = real token (either padding side). Returns [B, L, D]. DSKD
    scales the teacher's embeddings and states this way so a fresh query projection meets keys and
    values of unit spread whatever the teacher's scale (Qwen3's raw embeddings are ~0.03); per
    sentence, so padding and batch mates never change a sentence's result.
    """
    m = mask.to(states.dtype).unsqueeze(-1)
    count = m.sum(dim=(1, 2), keepdim=True) * states.shape[-1]
    mean = (states * m).sum(dim=(1, 2), keepdim=True) / count.clamp(min=1)
    var = ((states - mean) * m).pow(2).sum(dim=(1, 2), keepdim=True) / (count - 1).clamp(min=1)
    return states / var.sqrt().clamp(min=1e-6)


def cross_attend(scores: torch.Tensor, key_mask: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Per-sentence attention: softmax of each query row over that sentence's real keys, times values.

    scores: [B, Lq, Lk] (query·key logits of ONE sentence per b, never across sentences); key_mask:
    [B, Lk] 1 = real key, left or right padding; values: [B, Lk, D]. Returns [B, Lq, D], fp32.
    Padded keys get exactly zero weight; a padded query row still gets a finite mix of real keys
    (callers pool over real queries only).
    """
    with torch.autocast(scores.device.type, enabled=False):
        scores = scores.float().masked_fill(~key_mask.bool().unsqueeze(1), torch.finfo(torch.float32).min)
        return torch.softmax(scores, dim=-1) @ values.float()
