"""TALAS: InfoNCE on the student + MSE to cached teacher vectors (no teacher in memory).

    talas train --method talas --student_model_name <student> --teacher_model_name <teacher>

L = w_task · InfoNCE(z_a, z_p; τ) + w_kd · MSE(n(P(z^S)), n(t)), where t is the cached teacher
vector of the same text and P = Linear(d_S → d_T) only when the widths differ (trained with the
student, not exported). KD applies to every text of the batch that has a cached vector
(anchors, positives and hard negatives; anchors only with ``--kd_both_sides false``).
Defaults follow the seed: w_task = w_kd = 0.5, τ = 0.05, last-token pooling on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from talas.config import CacheConfig, option
from talas.errors import ConfigError
from talas.losses import cosine_distance, info_nce, normalized_mse
from talas.methods.base import Method


@dataclass
class TalasConfig(CacheConfig):
    w_task: float = option(0.5, "Weight of the InfoNCE task loss.")
    w_kd: float = option(0.5, "Weight of the distillation loss.")
    kd_loss: str = option("mse", "Distillation loss on normalised vectors: mse (seed) or cosine (1 - cos).", ("mse", "cosine"))
    kd_both_sides: bool = option(True, "Distil every text of a pair (False: anchors only).")


class TalasMethod(Method):
    name = "talas"
    config_class = TalasConfig
    teacher = "cached"

    def __init__(self, cfg: TalasConfig, student, teacher_dim: int):
        super().__init__(cfg, student, teacher_dim)
        self.projection = nn.Linear(student.dim, teacher_dim) if teacher_dim and student.dim != teacher_dim else None

    @classmethod
    def validate(cls, cfg: TalasConfig) -> None:
        if cfg.w_task < 0 or cfg.w_kd < 0 or cfg.w_task + cfg.w_kd == 0:
            raise ConfigError(f"--w_task ({cfg.w_task}) and --w_kd ({cfg.w_kd}) must be ≥ 0 and not both 0.")

    @classmethod
    def uses_teacher(cls, cfg: TalasConfig) -> bool:
        return cfg.w_kd > 0

    @classmethod
    def needs_pairs(cls, cfg: TalasConfig) -> bool:
        return cfg.w_task > 0

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cfg = self.cfg
        z = self.student(batch["features"])
        size, ids = batch["size"], batch["text_ids"]
        if batch["single_view"]:
            task = z.new_zeros(())
        else:
            task = info_nce(
                z[:size], z[size : 2 * size], cfg.temperature, negatives=z[2 * size :],
                anchor_ids=ids[:size], positive_ids=ids[size : 2 * size], negative_ids=ids[2 * size :],
            )
        if "teacher" not in batch:  # student-only baseline (w_kd = 0)
            loss = cfg.w_task * task
            return loss, {"loss": loss.detach(), "task": task.detach()}
        mask = batch["teacher_mask"].clone()
        if not cfg.kd_both_sides:
            mask[size:] = False
        student_vectors = z[mask]
        if self.projection is not None:
            student_vectors = self.projection(student_vectors)
        kd_fn = normalized_mse if cfg.kd_loss == "mse" else cosine_distance
        kd = kd_fn(student_vectors, batch["teacher"][mask]) if mask.any() else z.new_zeros(())
        loss = cfg.w_task * task + cfg.w_kd * kd
        return loss, {"loss": loss.detach(), "task": task.detach(), "kd": kd.detach()}
