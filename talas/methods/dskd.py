"""DSKD: dual-space distillation through cross-model attention (Zhang et al., EMNLP 2024), for sentence vectors.

    talas train --method dskd --student_model_name <student> --teacher_model_name <teacher>

L = (1 − kd_rate)·InfoNCE + kd_rate·(align_t2s + kl_student + align_s2t + kl_teacher), the online
teacher's and the student's token states carried into each other's space by a per-sentence
attention. Owns DskdConfig and DskdMethod (its three projectors). Formulas, defaults and where it
deviates from the paper: docs/methods.md#dskd.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import nn

from talas.config import TrainConfig, option
from talas.data.batch import Batch
from talas.errors import ConfigError
from talas.losses.tokens import cross_attend, std_scaled
from talas.losses.vectors import cosine_distance, normalized_mse, similarity_kl
from talas.methods.base import Method
from talas.models.encoder import load_config, pool
from talas.models.projection import fit_linear, sample_rows
from talas.models.teacher import teacher_setup
from talas.teacher.provision import Prepared, TeacherNeeds, distinct_rows
from talas.teacher.ridge import sample_online_states

logger = logging.getLogger(__name__)

ALIGN_LOSSES = {"cosine": cosine_distance, "mse": normalized_mse}


@dataclass
class DskdConfig(TrainConfig):
    kd_rate: float = option(0.5, "L = (1 - kd_rate)·InfoNCE + kd_rate·L_dskd, in [0, 1] (DSKD: 0.5; 0 = student-only baseline).", at_least=0)
    kd_temperature: float = option(2.0, "KD temperature T softening the in-batch similarity logits cos/τ (DSKD: 2.0).", above=0)
    projector_lr: float = option(1e-3, "Peak lr of the three projectors (query, t2s, s2t), on the student's schedule (DSKD: 1e-3).", above=0)
    align_loss: str = option("cosine", "Distance between a carried sentence vector and its target: cosine (1 - cos) or mse (of normalised vectors).", ("cosine", "mse"))
    teacher_layer: int = option(-1, "Teacher layer whose token states are carried into the student's space (transformers' numbering; -1 = last).")
    projector_init: str = option(
        "random", "How P_s2t and P_t2s start: random (as published) or ridge (least-squares fit between the untrained "
        "student's and the teacher's mean states on --projector_init_texts texts, one teacher forward each).", ("random", "ridge"),
    )
    projector_init_texts: int = option(1024, "Training texts the ridge fit of the projectors uses.", at_least=2)


class DskdMethod(Method):
    name = "dskd"
    config_class = DskdConfig

    def __init__(self, cfg: DskdConfig, student, teacher_dim: int):
        super().__init__(cfg, student, teacher_dim)
        self.teacher_dim = teacher_dim
        if self.uses_teacher(cfg):
            self.query = nn.Linear(student.dim, teacher_dim)
            self.t2s = nn.Linear(teacher_dim, student.dim)
            self.s2t = nn.Linear(student.dim, teacher_dim)

    @cached_property
    def teacher_pooling(self) -> str:
        """The online teacher's pooling ("auto" resolved as load_teacher resolves it), read on first use."""
        return teacher_setup(self.cfg).pooling

    @classmethod
    def uses_teacher(cls, cfg: DskdConfig) -> bool:
        return cfg.kd_rate > 0

    @classmethod
    def needs_pairs(cls, cfg: DskdConfig) -> bool:
        return cfg.kd_rate < 1

    @classmethod
    def teacher_needs(cls, cfg: DskdConfig) -> TeacherNeeds:
        if not cls.uses_teacher(cfg):
            return TeacherNeeds(vectors="none")
        # Online pooled vectors are z_T; layer 0 gives the keys, teacher_layer the carried states.
        return TeacherNeeds(vectors="online", layers=(0, cfg.teacher_layer))

    @classmethod
    def validate(cls, cfg: DskdConfig) -> None:
        if not 0 <= cfg.kd_rate <= 1:
            raise ConfigError(f"--kd_rate {cfg.kd_rate:g} is out of range: it must be in [0, 1] (L = (1 - kd_rate)·InfoNCE + kd_rate·L_dskd).")
        if not cls.uses_teacher(cfg):
            return
        layers = int(load_config(cfg.teacher_model_name).num_hidden_layers)
        if not -(layers + 1) <= cfg.teacher_layer <= layers:
            raise ConfigError(
                f"--teacher_layer {cfg.teacher_layer}: {cfg.teacher_model_name!r} has {layers} layers "
                f"(valid: {-(layers + 1)}..{layers}, 0 = embeddings, -1 = last)."
            )

    def lr_overrides(self) -> dict[str, float]:
        # Fixed before the optimiser and the scheduler exist, so the schedule scales the projectors'
        # lr too (the reference code added them after the scheduler: a constant lr).
        return {prefix: self.cfg.projector_lr for prefix in ("query.", "t2s.", "s2t.")} if self.uses_teacher(self.cfg) else {}

    @torch.no_grad()
    def initialise(self, prepared: Prepared) -> None:
        """``--projector_init ridge``: fit P_s2t and P_t2s by ridge regression on a sample of texts.

        P_q starts at zero, so the attention starts as an average: v_s→t = P_s2t(mean student token) and
        v_t→s = P_t2s(mean scaled teacher token). P_s2t is fitted from the untrained student's mean token
        states to the teacher's sentence vectors, P_t2s from the teacher's to the student's. Costs one
        teacher forward per sampled text.
        """
        cfg = self.cfg
        supply, texts = prepared.supply, prepared.texts
        if cfg.projector_init != "ridge" or supply.online is None:
            return
        sample = [texts[i] for i in sample_rows(len(texts), cfg.projector_init_texts, cfg.seed)]

        def reduce(batch: Batch, out):
            s_mask, t_mask = batch.features["attention_mask"], batch.teacher_features["attention_mask"]
            return (pool(out.tokens, s_mask, "mean"), out.pooled, batch.teacher_vectors,
                    pool(std_scaled(batch.teacher_hidden[1], t_mask), t_mask, "mean"))

        student_means, student_vectors, teacher_vectors, teacher_means = sample_online_states(self.student, supply, sample, reduce)
        # A zero query makes every attention row uniform over the real tokens, so the carried vectors
        # start as exactly the mean states the fits below assume (with a random P_q the rows are peaked
        # and the fits hold only roughly); P_q still gets gradients, the keys differ from token to token.
        nn.init.zeros_(self.query.weight)
        nn.init.zeros_(self.query.bias)
        s2t = fit_linear(self.s2t, student_means, teacher_vectors)
        t2s = fit_linear(self.t2s, teacher_means, student_vectors)
        logger.info(f"Projectors initialised by ridge regression on {len(sample)} texts (mean cosine: s2t to the teacher {s2t:.3f}, t2s to the student {t2s:.3f}).")

    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cfg = self.cfg
        out = self.student.forward_tokens(batch.features, layers=(0,) if self.distils else ())
        task = self.task_loss(out.pooled, batch)
        ids = batch.text_ids
        if not self.distils:  # kd_rate 0: the student-only baseline
            return task, {"loss": task.detach(), "task": task.detach()}
        terms = self.dskd_terms(batch, out, distinct_rows(ids, torch.ones_like(ids, dtype=torch.bool)))
        dskd = sum(terms.values())
        loss = (1 - cfg.kd_rate) * task + cfg.kd_rate * dskd
        metrics = {"loss": loss, "task": task, **terms, "dskd": dskd}
        return loss, {k: v.detach() for k, v in metrics.items()}

    def carry(self, batch: Batch, out, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled carried vectors (v_t→s [N, d_S], v_s→t [N, d_T]) of the texts at ``rows``."""
        s_mask = batch.features["attention_mask"][rows]
        t_mask = batch.teacher_features["attention_mask"][rows]
        t_embed, t_states = (h[rows] for h in batch.teacher_hidden)
        query = self.query(out.hidden_states[0][rows].detach())
        scores = query @ std_scaled(t_embed, t_mask).transpose(1, 2) / math.sqrt(self.teacher_dim)  # [N, Ls, Lt]
        t2s = cross_attend(scores, t_mask, self.t2s(std_scaled(t_states, t_mask)))
        s2t = cross_attend(scores.transpose(1, 2), s_mask, self.s2t(out.tokens[rows]))
        return pool(t2s, s_mask, self.student.pooling), pool(s2t, t_mask, self.teacher_pooling)

    def dskd_terms(self, batch: Batch, out, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        v_t2s, v_s2t = self.carry(batch, out, rows)
        z_s, z_t = out.pooled[rows], batch.teacher_vectors[rows]
        align = ALIGN_LOSSES[cfg.align_loss]
        scale = 1.0 / (cfg.temperature * cfg.kd_temperature)
        return {
            "align_t2s": align(v_t2s, z_s.detach()),
            "kl_student": similarity_kl(v_t2s.detach(), z_s, scale),
            "align_s2t": align(v_s2t, z_t),
            "kl_teacher": similarity_kl(z_t, v_s2t, scale),
        }
