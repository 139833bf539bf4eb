"""Closed-form starts for fresh projections: ridge regression between the untrained models' states.

A projection that starts at random maps one model's vectors far from the other's, so the first
steps of a distillation term mostly fit the projection while dragging the pretrained student
around (measured for TALAS and DSKD with all-mpnet-base-v2: 150 steps from a random start score
below the untrained student). A ridge fit on a sample of training texts starts the term where it
is informative; it costs one student and (for an online teacher) one teacher pass per sampled text.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from talas.config import TrainConfig, option

RIDGE_ALPHA = 1e-2  # ridge strength relative to the inputs' mean variance: a mild shrinkage


def ridge_fit(x: torch.Tensor, y: torch.Tensor, alpha: float = RIDGE_ALPHA) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight [d_y, d_x] and bias [d_y] minimising ‖x·Wᵀ + b − y‖² + λ‖W‖², λ = alpha·tr(cov x)·n/d_x.

    Closed form on centred data (the bias is not shrunk), solved in float64 for stability.
    """
    x, y = x.double(), y.double()
    x_mean, y_mean = x.mean(0), y.mean(0)
    xc, yc = x - x_mean, y - y_mean
    gram = xc.T @ xc
    lam = alpha * gram.trace() / x.shape[1]
    weight_t = torch.linalg.solve(gram + lam * torch.eye(x.shape[1], dtype=gram.dtype), xc.T @ yc)
    return weight_t.T.float(), (y_mean - x_mean @ weight_t).float()


@torch.no_grad()
def fit_linear(linear: nn.Linear, x: torch.Tensor, y: torch.Tensor) -> float:
    """Sets ``linear`` to the ridge map from x to y; returns the fitted outputs' mean cosine to y."""
    x, y = x.to(linear.weight.device), y.to(linear.weight.device)
    weight, bias = ridge_fit(x, y)
    linear.weight.copy_(weight)
    linear.bias.copy_(bias)
    return float(torch.nn.functional.cosine_similarity(linear(x), y).mean())


def sample_rows(count: int, size: int, seed: int) -> np.ndarray:
    """``size`` distinct indices below ``count`` (all when fewer), drawn with the run's seed, ascending."""
    return np.sort(np.random.default_rng(seed).choice(count, size=min(count, size), replace=False))


#: Which way a token-level method's projection P carries states: the published teacher → student
#: (P: d_T → d_S, compared in the student's space) or student → teacher (P: d_S → d_T).
DIRECTIONS = ("teacher_to_student", "student_to_teacher")


@dataclass
class ProjectionConfig(TrainConfig):
    """The options of a token-level method's projection P (CDM, EMO)."""

    projection_lr: float = option(1e-3, "Peak learning rate of the projection P (0 = --learning_rate).", at_least=0)
    projection: str = option(
        "teacher_to_student", "Which way P carries token states: teacher_to_student (published: P(h_T) compared in the student's "
        "space) or student_to_teacher (P(h_S) compared with the teacher's own states).", DIRECTIONS,
    )
    projection_init: str = option(
        "random", "How P starts: random (as published) or ridge (least-squares fit between the two models' mean token "
        "states on --projection_init_texts texts, one teacher forward each).", ("random", "ridge"),
    )
    projection_init_texts: int = option(1024, "Training texts the ridge fit of P uses.", at_least=2)


def projection_for(direction: str, student_dim: int, teacher_dim: int) -> nn.Linear:
    return nn.Linear(teacher_dim, student_dim) if direction == DIRECTIONS[0] else nn.Linear(student_dim, teacher_dim)
