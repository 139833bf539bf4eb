"""Relations read from attention maps (EMO): token importance, the top-m mapped tokens and linear CKA
between two models' attention among the same tokens."""

from __future__ import annotations

import torch


def emo_importance(attention: torch.Tensor, mask: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """EMO's token importance: the attention each token receives, summed over the real queries.

    attention: [B, H, L, L] (rows: queries) of the teacher's last layer; mask: [B, L] 1 = real token;
    content: [B, L] bool, tokens that may be important (not special, stop word, digit or punctuation).
    Returns [B, L] head-averaged column sums; every non-content token gets its row's smallest content
    importance (0 if the row has no content token), so attention sinks ([CLS], EOS, "the", ".")
    cannot take the mass. Padding gets 0.
    """
    real = mask.bool()
    received = (attention.float().mean(1) * real.unsqueeze(-1).float()).sum(1)
    content = content.bool() & real
    floor = received.masked_fill(~content, float("inf")).amin(1, keepdim=True)
    floor = torch.where(torch.isinf(floor), torch.zeros_like(floor), floor)
    out = torch.where(content, received, floor.expand_as(received))
    return out.masked_fill(~real, 0.0)


def emo_top_m(scores: torch.Tensor, eligible: torch.Tensor, n_map: torch.Tensor, divisor: int) -> torch.Tensor:
    """EMO's top-m: the m = ⌊n_map / divisor⌋ eligible pairs of highest score (fewer if fewer are eligible).

    scores: [B, G] importance of each pair's teacher token; eligible: [B, G] bool; n_map: [B] number
    of mapped pairs. Ties go to the earlier pair. Returns [B, G] bool.
    """
    order = torch.sort(scores.masked_fill(~eligible, float("-inf")), dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    return eligible & (rank < (n_map // divisor).unsqueeze(1))


def linear_cka(x: torch.Tensor, y: torch.Tensor, rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Linear CKA between two sets of row vectors, one pair of sets per batch element; fp32.

    x: [B, n, p], y: [B, n, q] (row i of x and row i of y describe the same item; the widths may
    differ); rows: [B, n] bool, the real rows (None: all). Padded rows must not matter, so they are
    left out of the column means and zeroed after centring; padded COLUMNS must be zero in every
    row (then centring keeps them zero). Returns (cka [B], defined [B] bool):

        CKA = ‖X̃ᵀỸ‖²_F / (‖X̃ᵀX̃‖_F · ‖ỸᵀỸ‖_F),   X̃, Ỹ centred over the real rows,

    the HSIC ratio of Kornblith et al. (2019) with linear kernels: 1 when Y = c·X·Q (isotropic
    scale c, orthogonal Q), in [0, 1] always. (METHODS.md writes the square root of this, which
    shares those properties; "linear CKA" names this one.) ``defined`` is False with fewer than 3
    real rows (two centred rows are ±d: rank one, and CKA is 1 whatever the rows are) or where a
    side has no spread over them; cka is 0 there, without NaN.
    """
    with torch.autocast(x.device.type, enabled=False):
        x, y = x.float(), y.float()
        keep = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if rows is None else rows.bool()
        weight = keep.to(x.dtype).unsqueeze(-1)
        count = weight.sum(1, keepdim=True).clamp(min=1)
        x = (x - (x * weight).sum(1, keepdim=True) / count) * weight
        y = (y - (y * weight).sum(1, keepdim=True) / count) * weight
        cross = (x.transpose(1, 2) @ y).pow(2).sum((1, 2))
        self_x = torch.linalg.matrix_norm(x.transpose(1, 2) @ x)
        self_y = torch.linalg.matrix_norm(y.transpose(1, 2) @ y)
        # Relative threshold: a side whose centred rows are rounding noise has no spread.
        tiny = torch.finfo(x.dtype).eps
        defined = (self_x > tiny * x.pow(2).sum((1, 2)).clamp(min=tiny)) & (self_y > tiny * y.pow(2).sum((1, 2)).clamp(min=tiny))
        defined &= keep.sum(1) >= 3
        denominator = torch.where(defined, self_x * self_y, torch.ones_like(self_x))
        return torch.where(defined, cross / denominator, torch.zeros_like(cross)), defined
