"""CDM (Contextual Dynamic Mapping, Chen et al. 2025, arXiv 2502.11104) for sentence embeddings.

    talas train --method cdm --student_model_name <student> --teacher_model_name <teacher>

L = w_task · InfoNCE + w_kd · L_cdm over token groups aligned once before training by DTW with
entropy weights. Owns CdmConfig, the entropy-weight pass and its table, the weighted-DTW aligner
and CdmMethod. Formulas, defaults and deviations from the paper: docs/methods.md#cdm.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from talas.align.groups import Group, aligned_positions, dtw_groups
from talas.align.views import TokenView, encoding_view
from talas.config import option
from talas.data.batch import Batch
from talas.errors import ConfigError, TrainingError
from talas.losses.tokens import GROUP_LOSSES, cdm_entropy_weights, cdm_group_mse, center_groups, group_mean
from talas.methods.base import Method
from talas.models.encoder import Encoder, load_config
from talas.models.logits import Logits, pseudo_logits, vocab_size
from talas.models.projection import ProjectionConfig, projection_for
from talas.teacher.provision import Prepared, TeacherNeeds
from talas.teacher.ridge import fit_mean_states

logger = logging.getLogger(__name__)

ALIGNMENT = "cdm"
TOKEN_WEIGHTS = ("both", "teacher", "none")
#: Logits held at once while computing entropies ([texts, tokens, vocabulary] entries, fp32: 256 MB).
_LOGIT_BUDGET = 1 << 26


@dataclass
class CdmConfig(ProjectionConfig):
    student_pooling: str = option("mean", "Student pooling.", ("cls", "mean", "last_token"), group="student")
    w_task: float = option(0.9, "Weight of the InfoNCE task loss (CDM: 0.9, i.e. kd_alpha).")
    w_kd: float = option(0.1, "Weight of L_cdm, the aligned-group state loss (CDM: 0.1).")
    teacher_layer: int = option(-1, "Teacher hidden-state layer distilled (transformers' numbering, -1 = last).")
    token_weights: str = option(
        "both", "Entropy weights in the DTW cost: both sides (initial student and teacher), teacher side only, or none (plain DTW).",
        TOKEN_WEIGHTS,
    )
    center: bool = option(False, "Subtract each side's mean group state over the batch before normalising (removes the shared direction).")
    group_loss: str = option(
        "mse", "L_cdm: mse (squared distance of the normalised group states), mse_elementwise (its mean over the D entries) "
        "or relative (unnormalised states: sum of squared distances over the teacher side's sum of squared norms).",
        GROUP_LOSSES,
    )


def pieces_match(student: TokenView, teacher: TokenView) -> bool:
    """Whether both sides align the same piece sequence: then DTW's path is the diagonal at cost 0,
    which no positive weights can change."""
    return [student.pieces[k] for k in aligned_positions(student, teacher)] == [
        teacher.pieces[k] for k in aligned_positions(teacher, student)
    ]


WeightTable = dict[tuple[TokenView, TokenView], tuple[Sequence[float] | None, Sequence[float] | None]]


class EntropyDTW:
    """The CDM aligner: ``dtw_groups`` with the per-text weights of the table built before training
    (``table`` None: ``--token_weights none``, plain DTW for every text)."""

    def __init__(self, table: WeightTable | None):
        self.table = table

    def __call__(self, student: TokenView, teacher: TokenView) -> list[Group]:
        if self.table is None or pieces_match(student, teacher):
            return dtw_groups(student, teacher)
        weights = self.table.get((student, teacher))
        if weights is None:
            raise TrainingError(
                "CDM: a text reached the collator without entropy weights (its token views differ from the ones the "
                "weight pass built). This is a bug: the pass must tokenize exactly as the collator does."
            )
        return dtw_groups(student, teacher, *weights)


def views(text: str, student_enc, teacher_enc, student: Encoder, teacher: Encoder) -> tuple[TokenView, TokenView]:
    """A text's two TokenViews, as the collator builds them (talas.train.batching.PairCollator.align)."""
    return tuple(encoding_view(text, enc, lowercase=student.uncased, prompt_chars=len(encoder.prompt))
                 for enc, encoder in ((student_enc, student), (teacher_enc, teacher)))


@torch.inference_mode()
def entropy_weights(encoder: Encoder, logits_fn: Logits, vocab: int, ids: list[Sequence[int]],
                    device: torch.device) -> list[tuple[float, ...]]:
    """CDM weights of each text's unpadded tokens (losses.cdm_entropy_weights), in length-sorted batches
    of at most _LOGIT_BUDGET logits (a 151k-token vocabulary would otherwise need GBs per batch)."""
    out: list[tuple[float, ...]] = [()] * len(ids)
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    start = 0
    while start < len(order):
        size = max(1, _LOGIT_BUDGET // (len(ids[order[start]]) * vocab))
        batch = order[start : start + size]
        feats = {k: v.to(device) for k, v in encoder.pad([ids[i] for i in batch]).items()}
        weights = cdm_entropy_weights(logits_fn(feats), feats["attention_mask"]).cpu()
        for row, i in enumerate(batch):
            real = feats["attention_mask"][row].bool().cpu()
            out[i] = tuple(weights[row][real].tolist())
        start += len(batch)
    return out


def entropy_weight_table(cfg: CdmConfig, prepared: Prepared) -> WeightTable:
    """The weights of every training text whose two piece sequences differ, from one pass before training.

    Tokenizes with the run's own student and teacher Encoders (as the collator does); runs the models
    only when some text needs weights.
    """
    student, teacher, texts = prepared.student, prepared.supply.token_encoder, prepared.texts
    s_encs, t_encs = student.token_encodings(texts), teacher.token_encodings(texts)
    needed = []
    for k, text in enumerate(texts):
        pair = views(text, s_encs[k], t_encs[k], student, teacher)
        if not pieces_match(*pair):
            needed.append((k, pair))
    logger.info(f"CDM: {len(needed)} of {len(texts)} texts tokenize differently on the two sides and need entropy weights.")
    if not needed:
        return {}
    t_weights = entropy_weights(teacher, pseudo_logits(teacher.model), vocab_size(teacher.model),
                                [t_encs[k].ids for k, _ in needed], prepared.device)
    s_weights: list[tuple[float, ...] | None] = [None] * len(needed)
    if cfg.token_weights == "both":
        logits_fn, vocab = prepared.student_logits()
        s_weights = entropy_weights(student, logits_fn, vocab, [s_encs[k].ids for k, _ in needed], prepared.device)
    return {pair: (sw, tw) for (_, pair), sw, tw in zip(needed, s_weights, t_weights, strict=True)}


class CdmMethod(Method):
    name = "cdm"
    config_class = CdmConfig

    def __init__(self, cfg: CdmConfig, student: Encoder, teacher_dim: int):
        super().__init__(cfg, student, teacher_dim)
        self.projection = projection_for(cfg.projection, student.dim, teacher_dim) if cfg.w_kd > 0 else None

    @classmethod
    def validate(cls, cfg: CdmConfig) -> None:
        if cfg.w_task < 0 or cfg.w_kd < 0 or cfg.w_task + cfg.w_kd == 0:
            raise ConfigError(f"--w_task ({cfg.w_task}) and --w_kd ({cfg.w_kd}) must be ≥ 0 and not both 0.")
        if cfg.w_kd > 0:
            layers = int(load_config(cfg.teacher_model_name).num_hidden_layers)
            if not -(layers + 1) <= cfg.teacher_layer <= layers:
                raise ConfigError(f"--teacher_layer {cfg.teacher_layer} does not exist: the teacher has hidden states "
                                  f"0..{layers} (or {-(layers + 1)}..-1 from the end).")

    @classmethod
    def uses_teacher(cls, cfg: CdmConfig) -> bool:
        return cfg.w_kd > 0

    @classmethod
    def needs_pairs(cls, cfg: CdmConfig) -> bool:
        return cfg.w_task > 0

    @classmethod
    def teacher_needs(cls, cfg: CdmConfig) -> TeacherNeeds:
        if not cls.uses_teacher(cfg):
            return TeacherNeeds(vectors="none")
        return TeacherNeeds(vectors="none", layers=(cfg.teacher_layer,), alignments=(ALIGNMENT,))

    @classmethod
    def aligners(cls, cfg: CdmConfig, prepared: Prepared | None):
        if not cls.uses_teacher(cfg):
            return {}
        table = None if cfg.token_weights == "none" else entropy_weight_table(cfg, prepared)
        return {ALIGNMENT: EntropyDTW(table)}

    def initialise(self, prepared: Prepared) -> None:
        """``--projection_init ridge``: start P from a ridge fit (talas.teacher.ridge.fit_mean_states)."""
        if self.projection is None or self.cfg.projection_init != "ridge":
            return
        cfg = self.cfg
        count, fitted = fit_mean_states(self.projection, cfg.projection, self.student, prepared.supply, prepared.texts,
                                        cfg.projection_init_texts, cfg.seed)
        logger.info(f"Projection ({cfg.projection}) initialised by ridge regression on {count} texts (mean cosine of the fitted mean states {fitted:.3f}).")

    def lr_overrides(self) -> dict[str, float]:
        return {"projection.": self.cfg.projection_lr} if self.projection is not None else {}

    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cfg = self.cfg
        out = self.student.forward_tokens(batch.features)
        task = self.task_loss(out.pooled, batch)
        if self.projection is None:  # student-only baseline (w_kd = 0)
            loss = cfg.w_task * task
            return loss, {"loss": loss.detach(), "task": task.detach()}
        groups = batch.alignments[ALIGNMENT]
        student_means, s_nonempty = group_mean(groups.student_groups, out.tokens.float())
        teacher_means, t_nonempty = group_mean(groups.teacher_groups, batch.teacher_hidden[0].float())
        valid = groups.group_mask & s_nonempty & t_nonempty
        if cfg.projection == "teacher_to_student":
            teacher_means = self.projection(teacher_means).float()
        else:
            student_means = self.projection(student_means).float()
        if cfg.center:
            student_means, teacher_means = center_groups(student_means, valid), center_groups(teacher_means, valid)
        cdm = cdm_group_mse(student_means, teacher_means, valid, cfg.group_loss)
        loss = cfg.w_task * task + cfg.w_kd * cdm
        return loss, {"loss": loss.detach(), "task": task.detach(), "cdm": cdm.detach(), "groups": valid.sum().float()}
