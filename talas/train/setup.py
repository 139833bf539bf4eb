"""The training run's set-up steps before the loop: checks, student, batches, optimiser and schedule.

Each step is a function of the config and what earlier steps produced, so ``Trainer.run`` reads as
the list of steps; everything a user can get wrong fails here, before the teacher cache (which may
take hours) is built.
"""

from __future__ import annotations

import logging
import math
import random
from functools import partial

import numpy as np
import torch

from talas.data.examples import TrainingData
from talas.errors import ConfigError
from talas.methods.base import Method, Stage
from talas.models.encoder import Encoder, check_dropout, check_model_folder, chosen_layers, layer_choice, set_dropout
from talas.models.folder import resolve_pooling
from talas.models.logits import student_logits
from talas.models.teacher import teacher_max_length
from talas.teacher.provision import Prepared, TeacherNeeds, TeacherSupply
from talas.train.batching import PairCollator, epoch_batches, example_lengths

logger = logging.getLogger(__name__)


def lr_lambda(kind: str, warmup: int, total: int):
    """Multiplier of the peak lr at optimiser step ``step`` (0-based)."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if kind == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress)) if kind == "cosine" else 1.0 - progress

    return factor


def check_length(flag: str, value: int, limit: int | None, model: str) -> None:
    """Refuse (rather than clamp) a token budget above the model's position limit: a clamped run would
    record and cache a max_length it never used."""
    if limit is not None and value > limit:
        raise ConfigError(f"{flag} {value} is more than {model!r} accepts ({limit} tokens, its position limit). Pass {flag} {limit} or less.")


def check_models(cfg, method_cls: type[Method], data: TrainingData) -> None:
    """The model folders, token budgets, layer choice and dropout against the data, from configs and
    tokenizers only (no weights)."""
    student_config, limit = check_model_folder(cfg.student_model_name, "--student_model_name")
    check_length("--max_length", cfg.max_length, limit, cfg.student_model_name)
    if layer_choice(cfg) and getattr(student_config, "num_hidden_layers", None):
        chosen_layers(layer_choice(cfg), student_config.num_hidden_layers)
    if method_cls.uses_teacher(cfg):  # a student-only baseline never touches the teacher
        _, limit = check_model_folder(cfg.teacher_model_name, "--teacher_model_name")
        flag = "--teacher_max_length" if cfg.teacher_max_length else "--max_length"
        check_length(flag, teacher_max_length(cfg), limit, cfg.teacher_model_name)
    if cfg.student_dropout != -1:
        check_dropout(cfg.student_dropout)
        if cfg.student_dropout == 0 and data.kind == "single" and method_cls.needs_pairs(cfg):
            raise ConfigError(
                "--student_dropout 0 with single-text data makes both contrastive views of a text identical "
                "(dropout is what tells them apart). Keep dropout for the task loss, or pass --w_task 0."
            )


def load_student(cfg, needs: TeacherNeeds) -> Encoder:
    """The student as configured for training: chosen layers, frozen parts, dropout, checkpointing."""
    pooling, why = resolve_pooling(cfg.student_model_name, cfg.student_pooling, "the student")
    if cfg.student_pooling == "auto":
        logger.info(f"student pooling: {pooling} ({why})")
    student = Encoder.load(cfg.student_model_name, pooling, cfg.max_length,
                           layers=layer_choice(cfg), **needs.student_kwargs())
    if cfg.freeze_embeddings:
        student.model.get_input_embeddings().requires_grad_(False)
    if getattr(student.model, "pooler", None) is not None:
        # BERT-style [CLS] pooler head: our pooling reads the token states, so it gets no gradient,
        # and DDP refuses trainable parameters that take no part in the loss.
        student.model.pooler.requires_grad_(False)
    if cfg.student_dropout != -1:
        set_dropout(student.model, cfg.student_dropout)
    if cfg.gradient_checkpointing:
        # Newer transformers 5 releases renamed it (the old name warns); earlier ones have only the old name.
        enable = getattr(student.model, "activation_checkpointing_enable", None) or student.model.gradient_checkpointing_enable
        enable()
    return student


def prepared(cfg, texts: list[str], student: Encoder, supply: TeacherSupply, device: torch.device) -> Prepared:
    """What a method gets before training; the student's token logits are computed only if it asks."""
    return Prepared(texts, student, supply, device, partial(student_logits, student, cfg.student_model_name, layer_choice(cfg), device))


def batches(cfg, acc, method_cls: type[Method], data: TrainingData, student: Encoder, supply: TeacherSupply,
            aligners) -> tuple[PairCollator, np.ndarray | None, int]:
    """The collator, the example lengths (with --group_by_length) and this process's batches per epoch."""
    collate = PairCollator(data, student, supply.cache, supply.rows, single_view=not method_cls.needs_pairs(cfg),
                           teacher=supply.token_encoder, aligners=aligners)
    lengths = example_lengths(data) if cfg.group_by_length else None
    per_epoch = len(epoch_batches(len(data), cfg.batch_size, cfg.seed, 0, acc.process_index, acc.num_processes, lengths))
    if per_epoch == 0:
        raise ConfigError(f"{cfg.train_data_path}: {len(data)} training example(s) cannot give each of the {acc.num_processes} processes a batch. Use more data or fewer processes.")
    logger.info(f"Training samples: {len(data)}")
    logger.info(f"Training batches: {per_epoch}" + (f" per process ({acc.num_processes} processes)" if acc.num_processes > 1 else ""))
    return collate, lengths, per_epoch


def seed_process(seed: int, rank: int) -> None:
    """Every rank built the same initial weights from --seed; from here each draws its own dropout
    masks (rank 0 keeps the single-process stream). The data order depends on --seed alone."""
    if rank:
        torch.manual_seed(seed + rank)
        random.seed(seed + rank)


def optimiser(cfg, method: Method, stage: Stage, per_epoch: int):
    """AdamW over the stage's trainable parameters and its warm-up/decay schedule; (optimizer,
    scheduler, optimiser steps, epochs) of the stage."""
    optimizer = torch.optim.AdamW(method.param_groups(), lr=stage.learning_rate)
    steps_per_epoch = math.ceil(per_epoch / cfg.grad_accum_steps)
    total = stage.max_steps or steps_per_epoch * stage.epochs
    epochs = stage.epochs or math.ceil(total / steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg.lr_scheduler, int(cfg.warmup_ratio * total), total))
    return optimizer, scheduler, total, epochs
