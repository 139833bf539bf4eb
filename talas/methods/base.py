"""What every method provides to the training loop (see DESIGN.md, "A method's contract").

A method is an ``nn.Module`` holding the student and its own trainable extras (projections,
heads). ``forward(batch)`` returns ``(loss, metrics)`` (metrics: detached scalar tensors, one per loss
term, so logging never forces a device sync inside the step); the loop knows nothing else.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from talas.encoders import Encoder


class Method(nn.Module):
    name: ClassVar[str]
    config_class: ClassVar[type]
    #: "cached": sentence vectors from the teacher cache; "online": the teacher runs every step.
    teacher: ClassVar[str] = "cached"

    def __init__(self, cfg, student: Encoder, teacher_dim: int):
        super().__init__()
        self.cfg = cfg
        self.student = student

    @classmethod
    def needs_pairs(cls, cfg) -> bool:
        """Whether the loss compares two views of a text (False lets single-text data skip the second)."""
        return True

    def extra_modules(self) -> nn.ModuleDict:
        """Trainable modules besides the student: checkpointed, never exported."""
        return nn.ModuleDict({name: m for name, m in self.named_children() if name != "student"})

    def param_groups(self) -> list[dict]:
        """AdamW groups: no weight decay on biases and norms; extras may override the lr."""
        decay, no_decay = [], []
        for name, param in self.named_parameters():
            if param.requires_grad:
                (no_decay if param.ndim < 2 or "norm" in name.lower() else decay).append(param)
        return [
            {"params": decay, "weight_decay": self.cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError
