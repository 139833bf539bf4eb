"""The teacher as the config names it: its device, dtype and max_length, loaded frozen for inference.

The cache build, the online teacher and CDM's weight table all load it through ``load_teacher`` so
that every teacher pass of a run uses one model, pooling, prompt and max_length. ``teacher_setup``
decides how it embeds: a sentence-transformers folder by its own modules, a plain model by its
architecture, unless --pooling_method says how.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

from talas.errors import ModelError
from talas.models.encoder import Encoder, load_tokenizer, resolve_model_path
from talas.models.folder import resolve_pooling, st_folder_modules

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TeacherSetup:
    """How the teacher embeds a text: pooling, L2 normalisation (its Normalize module), the prompt prefixed."""

    pooling: str
    normalize: bool
    prompt: str
    line: str  # what was chosen and why, for the log ("" when --pooling_method said it)
    warning: str = ""  # an explicit flag contradicting the folder


def teacher_setup(cfg) -> TeacherSetup:
    """Resolve the teacher's pooling, normalisation and prompt (reads small files only, never the weights).

    An explicit --pooling_method keeps the behaviour runs had before folders were read (that pooling over
    the transformer's states, no Normalize, no folder prompt), so recorded commands reproduce their caches.
    """
    path = resolve_model_path(cfg.teacher_model_name)
    try:
        modules = st_folder_modules(path) if os.path.isdir(path) else None
    except ModelError:
        if cfg.pooling_method == "auto":
            raise
        modules = None  # modules TALAS cannot reproduce do not matter when the pooling is passed
    if modules is None or cfg.pooling_method != "auto":
        pooling, why = resolve_pooling(cfg.teacher_model_name, cfg.pooling_method, "the teacher")
        warning = ""
        if modules is not None and pooling != modules.pooling:
            warning = (f"--pooling_method {pooling} contradicts the teacher folder's own {modules.pooling} pooling "
                       f"(its sentence-transformers Pooling module); using {pooling} as passed.")
        # A pooling the user passed needs no announcement (a contradicted folder gets its warning).
        line = "" if cfg.pooling_method != "auto" else f"teacher pooling: {pooling} ({why})"
        return TeacherSetup(pooling, False, cfg.teacher_prompt, line, warning)
    if modules.dense:
        raise ModelError(f"Teacher {cfg.teacher_model_name!r} has Dense module(s) after pooling ({', '.join(modules.dense)}), "
                         "which TALAS does not reproduce in its teacher cache yet. Pass a teacher without Dense modules.")
    prompt = cfg.teacher_prompt or modules.prompt
    said = [modules.pooling, *(["normalized"] if modules.normalize else []),
            *([f"default prompt {modules.prompt!r}"] if prompt and prompt == modules.prompt else [])]
    line = f"teacher pooling: {', '.join(said)} (from the folder's sentence-transformers modules)"
    return TeacherSetup(modules.pooling, modules.normalize, prompt, line)


def announce(setup: TeacherSetup) -> None:
    if setup.line:
        logger.info(setup.line)
    if setup.warning:
        logger.warning(setup.warning)


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


def load_teacher(cfg, device: torch.device | None = None, quiet: bool = False, **model_kwargs) -> Encoder:
    """The frozen teacher Encoder; says how it embeds unless ``quiet`` (the cache key said it already)."""
    device = device or pick_device(cfg.device)
    setup = teacher_setup(cfg)
    if not quiet:
        announce(setup)
    teacher = Encoder.load(
        cfg.teacher_model_name, setup.pooling, teacher_max_length(cfg), setup.prompt,
        dtype=teacher_dtype(cfg.teacher_dtype, device), **model_kwargs,
    )
    return teacher.to(device).eval().requires_grad_(False)


def teacher_end_token(cfg, setup: TeacherSetup | None = None) -> str:
    """The token the teacher's Encoder ends every text with under last-token pooling ("" for mean/cls).

    Reads the tokenizer only (no weights), and asks the Encoder itself, so the key follows whatever
    end-token rule the Encoder applies.
    """
    setup = setup or teacher_setup(cfg)
    if setup.pooling != "last_token":
        return ""
    tokenizer = load_tokenizer(cfg.teacher_model_name)
    return Encoder(torch.nn.Identity(), tokenizer, setup.pooling, teacher_max_length(cfg), setup.prompt).end_token()
