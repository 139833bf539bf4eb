"""What every method provides to the training loop: the ``Method`` base class and its ``Stage``.

A method is an ``nn.Module`` holding the student and its trainable extras; ``forward(batch)`` returns
``(loss, metrics)`` and the optional hooks below default to a plain single-stage method that reads
cached teacher vectors. The contract in full: docs/methods.md#a-methods-contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from talas.data.batch import Batch
from talas.losses.contrastive import info_nce
from talas.models.encoder import Encoder
from talas.teacher.provision import Aligner, Prepared, TeacherNeeds, builtin_aligners


@dataclass(frozen=True)
class Stage:
    """One training phase: its own budget, peak lr, fresh optimiser/schedule and trainable set.

    ``name`` is the checkpoint subfolder ("" = checkpoints directly under ``checkpoints/``, as for
    every single-stage method). ``epochs`` passes over the data, capped by ``max_steps`` optimiser
    steps when that is set (``epochs`` 0: as many passes as ``max_steps`` needs).
    ``trainable``: parameter-name prefixes (as in ``named_parameters()``) trained in this stage,
    every other parameter frozen; None leaves ``requires_grad`` as the method set it.
    """

    name: str
    learning_rate: float
    epochs: int
    max_steps: int = 0
    trainable: tuple[str, ...] | None = None


class Method(nn.Module):
    name: ClassVar[str]
    config_class: ClassVar[type]

    def __init__(self, cfg, student: Encoder, teacher_dim: int):
        super().__init__()
        self.cfg = cfg
        self.student = student
        # Whether the loss has a distillation term: the batch then carries what teacher_needs declared.
        self.distils = self.uses_teacher(cfg)

    @classmethod
    def uses_teacher(cls, cfg) -> bool:
        """False when the configured loss has no distillation term (no cache, no teacher: a baseline)."""
        return True

    @classmethod
    def teacher_needs(cls, cfg) -> TeacherNeeds:
        """What the loop must supply each step; token-level methods override this."""
        if not cls.uses_teacher(cfg):
            return TeacherNeeds(vectors="none")
        return TeacherNeeds(vectors="cached" if getattr(cfg, "cache_teacher", True) else "online")

    @classmethod
    def aligners(cls, cfg, prepared: Prepared | None) -> dict[str, Aligner]:
        """Alignment name → function(student TokenView, teacher TokenView) → groups, for each declared
        alignment. Override to add one of your own (e.g. DTW with per-token weights, computed from
        ``prepared``); the collator computes it once per unique text and packs it like the built-in ones."""
        return builtin_aligners(cls.teacher_needs(cfg).alignments)

    @classmethod
    def needs_pairs(cls, cfg) -> bool:
        """Whether the loss compares two views of a text (False lets single-text data skip the second)."""
        return True

    @classmethod
    def validate(cls, cfg) -> None:
        """Raise a ConfigError for options that cannot work; runs before anything heavy is loaded."""

    def initialise(self, prepared: Prepared) -> None:
        """Called once before the first step of a fresh run (never on resume: the checkpoint holds the
        weights); a method may fit its fresh modules here from what the loop prepared (TALAS fits its
        projection from the cached teacher vectors of the training texts)."""

    def stages(self) -> list[Stage]:
        cfg = self.cfg
        return [Stage("", cfg.learning_rate, cfg.epochs, cfg.max_steps)]

    def start_stage(self, stage: Stage) -> None:
        """Called by the loop at the start of each stage it runs (a resumed one too), before its optimiser exists."""
        if stage.trainable is not None:
            for name, param in self.named_parameters():
                param.requires_grad_(name.startswith(stage.trainable))

    def export_modules(self) -> list[nn.Module]:
        """sentence-transformers modules placed after pooling in the exported student."""
        return []

    def embed(self, texts: list[str]) -> torch.Tensor:
        """[N, D] vectors of the model as exported (student + export_modules), for in-loop evaluation."""
        return self.student.encode(texts)

    def lr_overrides(self) -> dict[str, float]:
        """Parameter-name prefix → peak learning rate for modules trained at their own rate (e.g. a
        freshly initialised projection, which wants a larger one than the pretrained student)."""
        return {}

    def param_groups(self) -> list[dict]:
        """AdamW groups: no weight decay on biases and norms; ``lr_overrides()`` prefixes get their own lr.

        An overridden group's ``lr`` is its peak: the schedule scales every group by the same factor.
        """
        overrides = {prefix: lr for prefix, lr in self.lr_overrides().items() if lr > 0}
        groups: dict[tuple[float | None, bool], list] = {}
        for name, param in self.named_parameters():
            if param.requires_grad:
                lr = next((lr for prefix, lr in overrides.items() if name.startswith(prefix)), None)
                decays = not (param.ndim < 2 or "norm" in name.lower())
                groups.setdefault((lr, decays), []).append(param)
        return [
            {"params": params, "weight_decay": self.cfg.weight_decay if decays else 0.0, **({"lr": lr} if lr else {})}
            for (lr, decays), params in groups.items()
        ]

    def task_loss(self, vectors: torch.Tensor, batch: Batch) -> torch.Tensor:
        """InfoNCE over the batch's views (rows: anchors, positives, hard negatives); 0 with one view per text."""
        if batch.single_view:
            return vectors.new_zeros((), dtype=torch.float32)
        size, ids = batch.size, batch.text_ids
        return info_nce(
            vectors[:size], vectors[size : 2 * size], self.cfg.temperature, negatives=vectors[2 * size :],
            anchor_ids=ids[:size], positive_ids=ids[size : 2 * size], negative_ids=ids[2 * size :],
        )

    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError
