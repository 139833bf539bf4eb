"""Teacher vectors from the cache (built here if needed), and loading the teacher (the online teacher: talas/provision.py).

    cache, rows = ensure_cache(cfg, data.unique_texts(), anchors=data.anchors)

``ensure_cache`` reuses a cache whose key matches (teacher, revision, pooling, normalisation,
dtype, max_length, prompt, dim) and that holds every training text; otherwise it says which field
changed and rebuilds (or fails under ``--strict_cache``). It loads the teacher only to build.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict

import numpy as np
import torch

from talas.cache import CacheKey, TeacherCache, build_cache, open_cache, teacher_revision, texts_fingerprint
from talas.encoders import Encoder, load_config, resolve_model_path
from talas.errors import CacheError
from talas.legacy import is_legacy_path, read_legacy

SETTINGS = ("teacher", "teacher_revision", "pooling", "normalize", "dtype", "max_length", "prompt", "dim")
LEGACY_SETTINGS = ("teacher", "pooling", "normalize")


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


def cache_key(cfg, texts: Sequence[str]) -> CacheKey:
    """The key the cache must have for this config and these texts (reads the teacher's config only)."""
    config = load_config(cfg.teacher_model_name)
    return CacheKey(
        teacher=cfg.teacher_model_name,
        teacher_revision=teacher_revision(resolve_model_path(cfg.teacher_model_name), config),
        pooling=cfg.pooling_method,
        normalize=bool(cfg.normalize_cache),
        dtype=cfg.cache_dtype,
        max_length=teacher_max_length(cfg),
        prompt=cfg.teacher_prompt,
        dim=int(config.hidden_size),
        count=len(texts),
        texts_sha256=texts_fingerprint(texts),
    )


def cache_file(cfg) -> str:
    """Our format is always .safetensors; a seed-style .pt path maps to the same name with that suffix."""
    path = cfg.cache_path
    return os.path.splitext(path)[0] + ".safetensors" if is_legacy_path(path) else path


def check_cache(cache: TeacherCache, key: CacheKey, texts: Sequence[str], anchors: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """(problems, rows): why the cache cannot serve these texts, and each text's cache row (-1 = absent)."""
    legacy = cache.manifest.get("coverage") == "anchors"
    expected = asdict(key)
    problems = [
        f"{name}: {cache.manifest.get(name)!r} → {expected[name]!r}"
        for name in (LEGACY_SETTINGS if legacy else SETTINGS)
        if cache.manifest.get(name) != expected[name]
    ]
    if problems:
        return problems, np.empty(0, dtype=np.int64)
    rows = cache.rows_for(texts)
    if legacy:  # the seed cached anchors only; other texts simply get no KD target
        anchor_set = set(anchors)
        rows_needed = rows[np.fromiter((t in anchor_set for t in texts), dtype=bool, count=len(texts))]
    else:
        rows_needed = rows
    missing = int((rows_needed < 0).sum())
    if missing:
        problems.append(f"training texts changed ({missing} of them are not in the cache)")
    return problems, rows


def ensure_cache(cfg, texts: Sequence[str], anchors: Sequence[str], log: Callable[[str], None] = print) -> tuple[TeacherCache, np.ndarray]:
    """Return a valid cache for ``texts`` and the cache row of each text, building it if needed."""
    key = cache_key(cfg, texts)
    candidates = []
    if is_legacy_path(cfg.cache_path) and os.path.exists(cfg.cache_path):
        candidates.append(("seed-format cache", lambda: read_legacy(cfg.cache_path, anchors)))
    path = cache_file(cfg)
    if os.path.exists(path):
        candidates.append(("cache", lambda: open_cache(path)))
    for label, opener in candidates:
        cache = opener()
        problems, rows = check_cache(cache, key, texts, anchors)
        if not problems:
            log(f"Found valid teacher {label} at {cache.path} ({cache.count} embeddings, dim {cache.dim}); the teacher is not loaded.")
            if cache.manifest.get("coverage") == "anchors":
                log("  The seed format records no texts or max_length; its rows are matched to examples by position, KD applies to anchors only.")
            return cache, rows
        message = f"Teacher {label} at {cache.path} does not match this run: " + "; ".join(problems) + "."
        if cfg.strict_cache:
            raise CacheError(message + " Pass --strict_cache false to rebuild it, or point --cache_path elsewhere.")
        log(message + " Rebuilding.")
    if not candidates:
        log(f"Cache not found at {path}. Pre-computing teacher embeddings...")
    device = pick_device(cfg.device)
    cache = build_cache(
        path, texts, key, lambda: load_teacher(cfg, device), batch_size=cfg.cache_batch_size,
        chunk_size=cfg.cache_chunk_size, log=log,
    )
    log(f"Cached {cache.count} teacher embeddings to {path}")
    log(f"Teacher model freed from {'GPU ' if device.type == 'cuda' else ''}memory")
    return cache, cache.rows_for(texts)

