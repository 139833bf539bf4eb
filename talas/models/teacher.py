"""The teacher as the config names it: its device, dtype and max_length, loaded frozen for inference.

The cache build, the online teacher and CDM's weight table all load it through ``load_teacher`` so
that every teacher pass of a run uses one model, pooling, prompt and max_length.
"""

from __future__ import annotations

import torch

from talas.models.encoder import Encoder, load_tokenizer


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def teacher_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, name)


def teacher_max_length(cfg) -> int:
    return cfg.teacher_max_length or cfg.max_length


def load_teacher(cfg, device: torch.device | None = None, **model_kwargs) -> Encoder:
    device = device or pick_device(cfg.device)
    teacher = Encoder.load(
        cfg.teacher_model_name, cfg.pooling_method, teacher_max_length(cfg), cfg.teacher_prompt,
        dtype=teacher_dtype(cfg.teacher_dtype, device), **model_kwargs,
    )
    return teacher.to(device).eval().requires_grad_(False)


def teacher_end_token(cfg) -> str:
    """The token the teacher's Encoder ends every text with under last-token pooling ("" for mean/cls).

    Reads the tokenizer only (no weights), and asks the Encoder itself, so the key follows whatever
    end-token rule the Encoder applies.
    """
    if cfg.pooling_method != "last_token":
        return ""
    tokenizer = load_tokenizer(cfg.teacher_model_name)
    return Encoder(torch.nn.Identity(), tokenizer, cfg.pooling_method, teacher_max_length(cfg), cfg.teacher_prompt).end_token()
