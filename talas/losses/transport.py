"""Entropic optimal transport between token states (EMO's OT term): the cost, the token masses and
a batched, masked Sinkhorn."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def emo_ot_cost(student: torch.Tensor, projected_teacher: torch.Tensor, teacher_mask: torch.Tensor, kind: str) -> torch.Tensor:
    """EMO's transport cost [B, Ls, Lt] between student token states and projected teacher ones, in fp32.

    "softmax" (published): 1 − softmax over the text's teacher tokens of s·P(h)/√d. A softmax ignores
    what all of its logits share, so adding one vector to every projected teacher token of a text leaves
    this cost unchanged: it cannot see the text's mean teacher state, which for a mean-pooling teacher is
    its sentence vector. "cosine": 1 − cos(s, P(h)), which sees it.
    """
    student, projected = student.float(), projected_teacher.float()
    if kind == "cosine":
        cost = 1.0 - F.normalize(student, dim=-1) @ F.normalize(projected, dim=-1).transpose(1, 2)
        return cost.masked_fill(~teacher_mask.bool().unsqueeze(1), 2.0)  # padded columns get no mass anyway
    logits = student @ projected.transpose(1, 2) / math.sqrt(student.shape[-1])
    logits = logits.masked_fill(~teacher_mask.bool().unsqueeze(1), float("-inf"))
    return 1.0 - torch.softmax(logits, dim=-1)  # padded student rows are finite too


def emo_masses(importance: torch.Tensor, teacher_mask: torch.Tensor, pairs_student: torch.Tensor,
               pairs_teacher: torch.Tensor, student_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """OTIS masses: teacher a^T = softmax(importance) over its real tokens; student a^S = the mass of
    the teacher token each student token is MinED-paired with, the smallest teacher mass if unpaired,
    renormalised over the real student tokens.

    importance: [B, Lt]; teacher_mask: [B, Lt], student_mask: [B, Ls] 1 = real; pairs_student
    [B, G, Ls], pairs_teacher [B, G, Lt]: one-hot rows of the G one-to-one pairs (all-zero rows for
    no pair). Returns (a^S [B, Ls], a^T [B, Lt]), each row summing to 1, 0 on padding.
    """
    real_t, real_s = teacher_mask.bool(), student_mask.bool()
    a_t = torch.softmax(importance.float().masked_fill(~real_t, float("-inf")), dim=-1)
    carried = (pairs_student.float().transpose(1, 2) @ (pairs_teacher.float() @ a_t.unsqueeze(-1))).squeeze(-1)
    paired = pairs_student.sum(1) > 0
    floor = a_t.masked_fill(~real_t, float("inf")).amin(1, keepdim=True)
    a_s = torch.where(paired, carried, floor.expand_as(carried)).masked_fill(~real_s, 0.0)
    return a_s / a_s.sum(1, keepdim=True), a_t


@torch.no_grad()
def sinkhorn(cost: torch.Tensor, a: torch.Tensor, b: torch.Tensor, epsilon: float, max_iter: int,
             tol: float) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Entropic optimal transport plans for a batch of problems (log-domain Sinkhorn), in fp32.

    cost: [B, n, m]; a: [B, n], b: [B, m] masses, each row summing to 1, 0 on padding (padded rows
    and columns get exactly zero transport). Minimises ⟨P, C⟩ − ε·H(P) subject to P·1 = a, Pᵀ·1 = b.
    Each iteration fits the rows, then the columns (so the column sums are exact); it stops once every
    problem's row error Σ_i |P_i· − a_i| is ≤ ``tol``, else after ``max_iter`` iterations.
    Returns (plan [B, n, m], error [B], iterations). The plan carries no gradient: by the envelope
    theorem d OT_ε/dC is the optimal plan, so ⟨plan, C⟩ with a differentiable C is the loss, and the
    iterations keep no autograd memory. Log-domain potentials cannot underflow for small ε; fp32 even
    under bf16 autocast (bf16 cannot resolve masses of 1/n next to 1).
    """
    with torch.autocast(cost.device.type, enabled=False):
        scaled = -cost.detach().float() / epsilon
        log_a = a.float().log()  # log 0 = -inf: a padded row never receives mass
        log_b = b.float().log()
        f = torch.zeros_like(log_a)
        g = torch.zeros_like(log_b)
        error = torch.full(log_a.shape[:1], float("inf"), device=cost.device)
        iterations = 0
        while iterations < max_iter:
            new_f = log_a - torch.logsumexp(scaled + g.unsqueeze(1), dim=2)
            if iterations:
                # Row sums of the current plan (exact columns) are a·exp(f − new_f): the error comes free.
                ratio = torch.where(a > 0, (f - new_f).exp() - 1.0, torch.zeros_like(f))
                error = (a.float() * ratio.abs()).sum(1)
                if bool((error <= tol).all()):
                    break
            f = new_f
            g = log_b - torch.logsumexp(scaled + f.unsqueeze(2), dim=1)
            iterations += 1
        plan = (f.unsqueeze(2) + scaled + g.unsqueeze(1)).exp()
        if iterations == max_iter:  # the loop ran out: measure the final plan directly
            error = (plan.sum(2) - a.float()).abs().sum(1)
        return plan, error, iterations
