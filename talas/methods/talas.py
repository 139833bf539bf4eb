"""TALAS: InfoNCE on the student + MSE to cached teacher vectors (no teacher in memory).

    talas train --method talas --student_model_name <student> --teacher_model_name <teacher>

L = w_task · InfoNCE(z_a, z_p; τ) + w_kd · MSE(n(P(z^S)), n(t)) [+ w_contrast · InfoNCE(P(z^S), t; τ_c)],
P = Linear(d_S → d_T) when the widths differ, ridge-initialised and exported after pooling. Owns
TalasConfig and TalasMethod. Formulas, defaults and why: docs/methods.md#talas.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from talas.config import CacheConfig, option
from talas.data.batch import Batch
from talas.errors import ConfigError
from talas.losses.contrastive import info_nce
from talas.losses.vectors import cosine_distance, normalized_mse, normalized_mse_elementwise
from talas.methods.base import Method
from talas.models.projection import fit_linear, sample_rows
from talas.teacher.provision import Prepared
from talas.teacher.ridge import sample_online_states

logger = logging.getLogger(__name__)


@dataclass
class TalasConfig(CacheConfig):
    w_task: float = option(0.5, "Weight of the InfoNCE task loss.")
    w_kd: float = option(0.5, "Weight of the distillation loss.")
    kd_loss: str = option(
        "mse", "Distillation loss on normalised vectors: mse (squared distance per vector), mse_elementwise (the seed's, 1/D of mse) or cosine (1 - cos).",
        ("mse", "mse_elementwise", "cosine"),
    )
    export_projection: bool = option(
        True, "Export the projection to the teacher's width (when the widths differ) as a Dense module after pooling.",
        bookkeeping=True,  # shapes only the exported folder, not training: a resume may change it
    )
    kd_both_sides: bool = option(True, "Distil every text of a pair (False: anchors only).")
    w_contrast: float = option(
        0.0, "Weight of an in-batch contrastive term to the teacher: each student vector must pick its own text's "
        "teacher vector among the batch's (distils relations between texts, not only positions).", at_least=0,
    )
    contrast_temperature: float = option(0.05, "Temperature of the contrastive term to the teacher.", above=0)
    projection_lr: float = option(0.0, "Peak learning rate of the projection to the teacher's width (0 = --learning_rate).", at_least=0)
    projection_init: str = option(
        "ridge", "How the projection to the teacher's width starts: ridge (least-squares fit of the untrained student's "
        "vectors to the cached teacher vectors of --projection_init_texts training texts; seconds) or random.",
        ("ridge", "random"),
    )
    projection_init_texts: int = option(4096, "Training texts the ridge fit of the projection uses.", at_least=2)


KD_LOSSES = {"mse": normalized_mse, "mse_elementwise": normalized_mse_elementwise, "cosine": cosine_distance}
class TalasMethod(Method):
    name = "talas"
    config_class = TalasConfig
    teacher = "cached"

    def __init__(self, cfg: TalasConfig, student, teacher_dim: int):
        super().__init__(cfg, student, teacher_dim)
        self.projection = nn.Linear(student.dim, teacher_dim) if teacher_dim and student.dim != teacher_dim else None

    @classmethod
    def validate(cls, cfg: TalasConfig) -> None:
        if cfg.w_task < 0 or cfg.w_kd < 0 or cfg.w_task + cfg.w_kd + cfg.w_contrast == 0:
            raise ConfigError(
                f"--w_task ({cfg.w_task}), --w_kd ({cfg.w_kd}) and --w_contrast ({cfg.w_contrast}) must be ≥ 0 and not all 0."
            )

    @classmethod
    def uses_teacher(cls, cfg: TalasConfig) -> bool:
        return cfg.w_kd > 0 or cfg.w_contrast > 0

    @classmethod
    def needs_pairs(cls, cfg: TalasConfig) -> bool:
        return cfg.w_task > 0

    def initialise(self, prepared: Prepared) -> None:
        """Fit a fresh projection by ridge regression from the untrained student to the cached teacher.

        A random projection maps the student's vectors far from the teacher's, so the first steps of KD
        mostly drag the pretrained student around to fit a random map (measured: 150 steps with a
        random start score below the untrained student); the fit starts KD where it is informative.
        """
        supply = prepared.supply
        if self.projection is None or self.cfg.projection_init != "ridge":
            return
        if supply.cache is not None:
            present = np.flatnonzero(supply.rows >= 0)
            chosen = present[sample_rows(len(present), self.cfg.projection_init_texts, self.cfg.seed)]
            teacher = supply.cache.gather(supply.rows[chosen]).float()
            student = self.student.encode([prepared.texts[i] for i in chosen])
        else:  # --cache_teacher false: the same texts through the online teacher, so both runs start alike
            chosen = sample_rows(len(prepared.texts), self.cfg.projection_init_texts, self.cfg.seed)
            student, teacher = sample_online_states(self.student, supply, [prepared.texts[i] for i in chosen],
                                                    lambda batch, out: [out.pooled, batch.teacher_vectors])
        fitted = fit_linear(self.projection, student, teacher)
        logger.info(f"Projection initialised by ridge regression on {len(chosen)} texts (mean cosine to the teacher {fitted:.3f}).")

    def lr_overrides(self) -> dict[str, float]:
        return {"projection.": self.cfg.projection_lr} if self.projection is not None else {}

    def exports_projection(self) -> bool:
        return self.projection is not None and self.cfg.export_projection

    def embed(self, texts: list[str]) -> torch.Tensor:
        vectors = self.student.encode(texts)
        if self.exports_projection():
            with torch.inference_mode():
                vectors = self.projection(vectors.to(self.projection.weight.device)).float().cpu()
        return vectors

    def export_modules(self) -> list[nn.Module]:
        from talas.models.export import dense_module

        return [dense_module(self.projection)] if self.exports_projection() else []

    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cfg = self.cfg
        z = self.student(batch.features)
        size, ids = batch.size, batch.text_ids
        task = self.task_loss(z, batch)
        if not self.distils:  # student-only baseline (w_kd = 0)
            loss = cfg.w_task * task
            return loss, {"loss": loss.detach(), "task": task.detach()}
        mask = batch.teacher_mask.clone()
        if not cfg.kd_both_sides:
            mask[size:] = False
        student_vectors = z[mask]
        if self.projection is not None:
            student_vectors = self.projection(student_vectors)
        teacher = batch.teacher_vectors[mask]
        kd = KD_LOSSES[cfg.kd_loss](student_vectors, teacher) if mask.any() else z.new_zeros(())
        loss = cfg.w_task * task + cfg.w_kd * kd
        metrics = {"task": task.detach(), "kd": kd.detach()}
        if cfg.w_contrast > 0:
            # Both views of a text carry the same teacher vector: text ids keep them from being negatives.
            ids = ids[mask]
            contrast = info_nce(student_vectors, teacher, cfg.contrast_temperature, anchor_ids=ids, positive_ids=ids)
            loss = loss + cfg.w_contrast * contrast
            metrics["contrast"] = contrast.detach()
        return loss, {"loss": loss.detach(), **metrics}
