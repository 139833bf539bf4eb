"""Stella (Jasper & Stella, Zhang et al. 2024, arXiv 2412.19048): three sentence-level KD losses, staged.

    talas train --method stella --student_model_name <student> --teacher_model_name <teacher> \\
        --matryoshka_dims 1024,512,256,128

L = w_cos·L_cos + w_sim·L_sim + w_resim·L_resim on n(FC(student)) against the cached teacher vectors,
in three stages (FC; FC + last layers; Matryoshka widths). Owns StellaConfig, the width checks and
StellaMethod. Formulas, stages and deviations from the paper: docs/methods.md#stella.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from talas.config import CacheConfig, option
from talas.data.batch import Batch
from talas.errors import ConfigError
from talas.losses.vectors import cosine_distance, relative_similarity_loss, similarity_mse
from talas.methods.base import Method, Stage
from talas.models.encoder import layer_list, load_config
from talas.teacher.provision import distinct_rows


@dataclass
class StellaConfig(CacheConfig):
    student_pooling: str = option("mean", "Student pooling (Stella: mean).", ("cls", "mean", "last_token"), group="student")
    strict_cache: bool = option(True, "Fail instead of rebuilding when the cache does not match the run (Stella: true).", bookkeeping=True, group="cache")
    w_task: float = option(0.0, "Weight of the InfoNCE task loss on the FC output (0 as published).")
    w_cos: float = option(10.0, "Weight of L_cos (1 - cos to the teacher vector).")
    w_sim: float = option(200.0, "Weight of L_sim (MSE between in-batch similarity matrices).")
    w_resim: float = option(20.0, "Weight of L_resim (margin ranking of in-batch pair similarities).")
    resim_margin: float = option(0.015, "Margin of L_resim.")
    resim_max_pairs: int = option(32768, "Above this many text pairs in a batch, L_resim uses a random subset of this size (0 = always exact).")
    matryoshka_dims: list[int] = option([1024, 512, 256, 128], "Stage-3 output widths (prefixes of the FC output, each <= the teacher's width).")
    full_finetune: bool = option(False, "One stage, all parameters, stage 3's loss, --learning_rate/--epochs/--max_steps.")
    unfreeze_layers: int = option(3, "Last encoder layers trained in stages 2 and 3.")
    stage1_lr: float = option(1e-4, "Peak lr of stage 1 (FC only).")
    stage2_lr: float = option(8e-5, "Peak lr of stage 2 (FC + last layers).")
    stage3_lr: float = option(8e-5, "Peak lr of stage 3 (Matryoshka widths).")
    stage1_epochs: int = option(0, "Epochs of stage 1 (0 = --epochs; with --stage1_steps: 0 = as many as the steps need).")
    stage2_epochs: int = option(0, "Epochs of stage 2 (0 = --epochs; with --stage2_steps: 0 = as many as the steps need).")
    stage3_epochs: int = option(0, "Epochs of stage 3 (0 = --epochs; with --stage3_steps: 0 = as many as the steps need).")
    stage1_steps: int = option(0, "Optimiser steps of stage 1 (0 = --max_steps).")
    stage2_steps: int = option(0, "Optimiser steps of stage 2 (0 = --max_steps).")
    stage3_steps: int = option(0, "Optimiser steps of stage 3 (0 = --max_steps).")
    export_dim: int = option(0, "Width of the exported model: the first N FC outputs (0 = the teacher's width).", at_least=0, bookkeeping=True)


def check_dims(cfg: StellaConfig, teacher_dim: int) -> None:
    """ConfigError unless the Matryoshka and export widths are usable with this teacher."""
    dims = list(cfg.matryoshka_dims)
    example = ",".join(str(d) for d in dict.fromkeys([teacher_dim, teacher_dim // 2, teacher_dim // 4]) if d > 0)
    if not dims:
        raise ConfigError(f"--matryoshka_dims is empty; give at least one output width, e.g. --matryoshka_dims {example}.")
    bad = [d for d in dims if not 1 <= d <= teacher_dim]
    if bad:
        raise ConfigError(
            f"--matryoshka_dims {','.join(map(str, dims))}: {','.join(map(str, bad))} {'is' if len(bad) == 1 else 'are'} outside 1..{teacher_dim}, the teacher's "
            f"width (Stella's widths are prefixes of the {teacher_dim}-d FC output); use e.g. --matryoshka_dims {example}."
        )
    if len(set(dims)) != len(dims):
        raise ConfigError(f"--matryoshka_dims {','.join(map(str, dims))} repeats a width; list each once.")
    if not 0 <= cfg.export_dim <= teacher_dim:
        raise ConfigError(f"--export_dim {cfg.export_dim} is outside 1..{teacher_dim} (the teacher's width); 0 exports all {teacher_dim}.")


class StellaMethod(Method):
    name = "stella"
    config_class = StellaConfig
    teacher = "cached"

    def __init__(self, cfg: StellaConfig, student, teacher_dim: int):
        super().__init__(cfg, student, teacher_dim)
        check_dims(cfg, teacher_dim)  # again with the cache's width, which is what the losses see
        self.teacher_dim = teacher_dim
        self.fc = nn.Linear(student.dim, teacher_dim)
        self.dims = list(cfg.matryoshka_dims)

    @classmethod
    def needs_pairs(cls, cfg: StellaConfig) -> bool:
        return cfg.w_task > 0

    @classmethod
    def validate(cls, cfg: StellaConfig) -> None:
        check_dims(cfg, int(load_config(cfg.teacher_model_name).hidden_size))

    def stages(self) -> list[Stage]:
        cfg = self.cfg
        if cfg.full_finetune:
            return [Stage("", cfg.learning_rate, cfg.epochs, cfg.max_steps)]
        layers = layer_list(self.student.model)
        prefix = next(name for name, module in self.student.model.named_modules() if module is layers)
        top = tuple(f"student.model.{prefix}.{i}." for i in range(max(0, len(layers) - cfg.unfreeze_layers), len(layers)))

        def stage(n: int, trainable: tuple[str, ...]) -> Stage:
            lr, epochs, steps = (getattr(cfg, f"stage{n}_{key}") for key in ("lr", "epochs", "steps"))
            if steps:
                return Stage(f"stage{n}", lr, epochs, steps, trainable)
            return Stage(f"stage{n}", lr, epochs or cfg.epochs, cfg.max_steps, trainable)

        return [stage(1, ("fc.",)), stage(2, ("fc.", *top)), stage(3, ("fc.", *top))]

    def start_stage(self, stage: Stage) -> None:
        super().start_stage(stage)
        # Stages 1 and 2 distil the full width only; stage 3 (and the single full stage) every width.
        self.dims = [self.teacher_dim] if stage.name in ("stage1", "stage2") else list(self.cfg.matryoshka_dims)

    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cfg = self.cfg
        rows = distinct_rows(batch.text_ids, batch.teacher_mask)
        metrics: dict[str, torch.Tensor] = {}
        if cfg.w_task > 0:
            out = self.fc(self.student(batch.features))
            task = self.task_loss(out, batch)
            out = out[rows]
            metrics["task"] = task.detach()
            loss = cfg.w_task * task
        else:
            out = self.fc(self.student({k: v[rows] for k, v in batch.features.items()}))
            loss = out.new_zeros((), dtype=torch.float32)
        teacher = batch.teacher_vectors[rows]
        sims, resims = [], []
        for k in self.dims:
            sims.append(similarity_mse(out[:, :k], teacher))
            resims.append(relative_similarity_loss(out[:, :k], teacher, cfg.resim_margin, cfg.resim_max_pairs))
        if self.teacher_dim in self.dims:
            metrics["cos"] = cosine_distance(out, teacher)
            loss = loss + cfg.w_cos * metrics["cos"]
        metrics["sim"], metrics["resim"] = torch.stack(sims).mean(), torch.stack(resims).mean()
        loss = loss + cfg.w_sim * metrics["sim"] + cfg.w_resim * metrics["resim"]
        return loss, {"loss": loss.detach(), **{k: v.detach() for k, v in metrics.items()}}

    @torch.inference_mode()
    def embed(self, texts: list[str]) -> torch.Tensor:
        width = self.cfg.export_dim or self.teacher_dim
        vectors = self.student.encode(texts).to(self.fc.weight.device)
        return nn.functional.linear(vectors, self.fc.weight[:width], self.fc.bias[:width]).float().cpu()

    def export_modules(self) -> list[nn.Module]:
        from talas.models.export import dense_module

        return [dense_module(self.fc, self.cfg.export_dim or self.teacher_dim)]
