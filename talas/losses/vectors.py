"""Losses between sentence vectors: distances to the teacher's vector (TALAS, Stella, DSKD) and
comparisons of in-batch similarity structure (Stella's L_sim and L_resim, DSKD's KL)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def normalized_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """mean_b ‖n(student_b) − n(teacher_b)‖²: the squared distance per vector, averaged over the batch.

    student, teacher: [B, D] (same D: project the student first). Equals 2·(1 − mean cos) whatever
    D is, so its weight against the task loss means the same for a 384-d and a 1024-d teacher.
    """
    diff = F.normalize(student.float(), dim=-1) - F.normalize(teacher.float(), dim=-1)
    return diff.pow(2).sum(dim=-1).mean()


def normalized_mse_elementwise(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """The seed's KD term: MSE(n(student), n(teacher)) averaged over all B·D entries.

    student, teacher: [B, D]. Equals normalized_mse / D = 2·(1 − mean cos)/D: at the seed's weights
    (w_task = w_kd = 0.5, τ = 0.05) its gradient is ~1/1000 of InfoNCE's, so the teacher barely
    counts; kept as ``--kd_loss mse_elementwise`` to reproduce the seed.
    """
    return F.mse_loss(F.normalize(student.float(), dim=-1), F.normalize(teacher.float(), dim=-1))


def cosine_distance(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """mean_b (1 − cos(student_b, teacher_b)); student, teacher: [B, D]."""
    return (1.0 - F.cosine_similarity(student.float(), teacher.float(), dim=-1)).mean()


def cosine_matrix(x: torch.Tensor) -> torch.Tensor:
    """n(x)·n(x)ᵀ: [B, D] → [B, B], in fp32 even under autocast.

    The Stella terms compare similarities to margins of 0.015, finer than bf16 resolves near 1.
    """
    with torch.autocast(x.device.type, enabled=False):
        x = F.normalize(x.float(), dim=-1)
        return x @ x.T


def similarity_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Stella's L_sim: MSE(n(S)·n(S)ᵀ, n(T)·n(T)ᵀ), averaged over all B² entries.

    student: [B, D_S], teacher: [B, D_T]. The widths may differ (both matrices are B × B), so a
    Matryoshka prefix of the student is compared with the full-width teacher.
    """
    return F.mse_loss(cosine_matrix(student), cosine_matrix(teacher))


def relative_similarity_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    margin: float = 0.015,
    max_pairs: int = 0,
    chunk_elements: int = 1 << 24,
) -> torch.Tensor:
    """Stella's L_resim: the student must order text pairs as the teacher does, by a margin.

    student: [B, D_S], teacher: [B, D_T] (normalised here). Text pairs p = (i, j), i < j, have
    similarities s_p = n(s_i)·n(s_j) and t_p = n(t_i)·n(t_j); there are P = B(B−1)/2. Returns
    the scalar mean, over ordered pairs of text pairs (p, q) with t_p > t_q, of
    max(0, s_q − s_p + margin); 0 when there is no such (p, q) (B < 3, or all t_p equal).
    Without ties this is the authors' code exactly (each unordered {p, q} once, in the teacher's
    order); ties carry no order, so they are left out instead of ordered by index.

    The (p, q) grid has P² = O(B⁴) cells (6.6·10⁷ for 128 distinct texts, 1.1·10⁹ for 256,
    5.4·10⁹ for 384), so:
    - it is evaluated in row blocks of at most ``chunk_elements`` cells, and the gradient,
      which only counts active hinges per pair, is accumulated in the same pass: memory is
      O(P + chunk_elements) instead of the several P² tensors autograd would keep;
    - with ``max_pairs`` > 0 and P > max_pairs, a uniform random subset of max_pairs text pairs
      (a fresh draw from the global RNG every call) stands in for all of them, bounding the time.
    The result equals the exact definition whenever P ≤ max_pairs (or max_pairs is 0).
    """
    s_matrix, t_matrix = cosine_matrix(student), cosine_matrix(teacher.detach())
    i, j = torch.triu_indices(s_matrix.shape[0], s_matrix.shape[0], offset=1, device=s_matrix.device)
    s_pairs, t_pairs = s_matrix[i, j], t_matrix[i, j]
    if 0 < max_pairs < s_pairs.numel():
        keep = torch.randperm(s_pairs.numel(), device=s_pairs.device)[:max_pairs]
        s_pairs, t_pairs = s_pairs[keep], t_pairs[keep]
    rows = max(1, chunk_elements // max(1, s_pairs.numel()))
    return _PairRankingHinge.apply(s_pairs, t_pairs, margin, rows)


class _PairRankingHinge(torch.autograd.Function):
    """mean over {(p, q): t_p > t_q} of relu(s_q − s_p + margin), blockwise, with its exact gradient.

    s, t: [P]. d/ds_q gains 1 per active (p, q) hinge and d/ds_p loses 1, divided by the count of
    (p, q) with t_p > t_q; only this [P] vector is kept for backward.
    """

    @staticmethod
    def forward(ctx, s: torch.Tensor, t: torch.Tensor, margin: float, rows: int) -> torch.Tensor:
        total = torch.zeros((), dtype=torch.float64, device=s.device)
        count = torch.zeros((), dtype=torch.int64, device=s.device)
        slope = torch.zeros_like(s)
        for start in range(0, s.numel(), rows):
            block = slice(start, start + rows)
            hinge = s.unsqueeze(0) - s[block].unsqueeze(1) + margin  # [r, P]: s_q − s_p + margin
            ordered = t[block].unsqueeze(1) > t.unsqueeze(0)  # t_p > t_q
            active = ordered & (hinge > 0)
            total += torch.where(active, hinge, 0.0).sum(dtype=torch.float64)
            count += ordered.sum()
            active = active.to(s.dtype)
            slope += active.sum(0)
            slope[block] -= active.sum(1)
        denominator = count.clamp(min=1)
        ctx.save_for_backward(slope / denominator)
        return (total / denominator).to(s.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (slope,) = ctx.saved_tensors
        return grad * slope, None, None, None


def similarity_kl(target: torch.Tensor, other: torch.Tensor, scale: float) -> torch.Tensor:
    """KL(p_target ‖ p_other) between in-batch similarity distributions, averaged over rows.

    target: [B, D1], other: [B, D2] (one row per distinct text; the widths may differ). Row i's
    distribution is softmax_j(scale · cos(x_i, x_j)) over the other texts j ≠ i (a text's similarity
    to itself is 1 in every space and says nothing). DSKD uses scale = 1/(τ·T): InfoNCE's logits,
    softened by the KD temperature T as the LM version softens vocabulary logits. Gradients flow into
    both arguments; detach the one that is a fixed target. Fewer than 2 rows: 0 (still in the graph).
    """
    b = target.shape[0]
    if b < 2:
        return (other.sum() + target.sum()) * 0.0
    # Dropping the diagonal (rather than masking it with -inf) keeps every logit finite, so neither
    # the loss nor its gradient can meet 0·inf.
    off_diagonal = ~torch.eye(b, dtype=torch.bool, device=target.device)
    log_p = torch.log_softmax((cosine_matrix(target) * scale)[off_diagonal].view(b, b - 1), dim=-1)
    log_q = torch.log_softmax((cosine_matrix(other) * scale)[off_diagonal].view(b, b - 1), dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1).mean()
