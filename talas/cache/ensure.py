"""Teacher vectors for training texts: the right cache found, repaired or built (``talas.cache.ensure_cache``).

    cache, rows = ensure_cache(cfg, data.unique_texts(), anchors=data.anchors)

``ensure_cache`` reuses a cache whose key matches (teacher, revision, pooling, normalisation,
dtype, max_length, prompt, dim and, under last-token pooling, the token the texts end with) and
that holds every training text, looking at --cache_path and the keyed caches beside it
(talas/cache/store.py); it checks the chunk checksums and rebuilds only chunks that fail.
Otherwise it says which field changed and builds the right cache beside the old one, never over
it (or fails under ``--strict_cache``). It loads the teacher only to build.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict

import numpy as np

from talas.cache.build import build_cache, dist_info, from_rank0
from talas.cache.format import (
    FORMAT,
    KEY_DEFAULTS,
    CacheKey,
    TeacherCache,
    describe_bad,
    key_of,
    normalize_model_id,
    open_cache,
    teacher_revision,
    texts_fingerprint,
)
from talas.cache.legacy import is_legacy_path, read_legacy
from talas.cache.planner import prepare_folder
from talas.cache.store import claim_target, file_format, store_files
from talas.errors import CacheError
from talas.models.encoder import load_config, resolve_model_path
from talas.models.teacher import load_teacher, pick_device, teacher_end_token, teacher_max_length, teacher_setup

logger = logging.getLogger(__name__)

SETTINGS = ("teacher", "teacher_revision", "pooling", "normalize", "dtype", "max_length", "prompt", "dim", "end_token")
# Why a last-token cache without a recorded end token is not served: its vectors may pool another token.
UNRECORDED_END = ("built before TALAS recorded the token the teacher's texts end with; a Qwen3-Embedding cache of that "
                  "time pooled the wrong token, a second end token appended after the tokenizer's own")
LEGACY_SETTINGS = ("teacher", "pooling", "normalize")


def note(message: str, warning: bool = False) -> None:
    """Log on rank 0 only: every rank takes the same path through here, one says so."""
    if dist_info()[0] == 0:
        (logger.warning if warning else logger.info)(message)


def cache_key(cfg, texts: Sequence[str]) -> CacheKey:
    """The key the cache must have for this config and these texts (reads the teacher's config, and its
    tokenizer under last-token pooling); the pooling, normalisation and prompt are those the teacher
    resolves to (its sentence-transformers modules or its architecture), never "auto"."""
    config = load_config(cfg.teacher_model_name)
    setup = teacher_setup(cfg)
    return CacheKey(
        teacher=normalize_model_id(cfg.teacher_model_name),
        teacher_revision=teacher_revision(resolve_model_path(cfg.teacher_model_name), config),
        pooling=setup.pooling,
        # The folder's Normalize module and --normalize_cache give the same vectors: one field.
        normalize=bool(cfg.normalize_cache) or setup.normalize,
        dtype=cfg.cache_dtype,
        max_length=teacher_max_length(cfg),
        prompt=setup.prompt,
        dim=int(config.hidden_size),
        count=len(texts),
        texts_sha256=texts_fingerprint(texts),
        end_token=teacher_end_token(cfg, setup),
    )


def cache_file(cfg) -> str:
    """Our format is always .safetensors; a seed-style .pt path maps to the same name with that suffix."""
    path = cfg.cache_path
    return os.path.splitext(path)[0] + ".safetensors" if is_legacy_path(path) else path


def check_cache(cache: TeacherCache, key: CacheKey, texts: Sequence[str], anchors: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """(problems, rows): why the cache cannot serve these texts, and each text's cache row (-1 = absent)."""
    legacy = cache.manifest.get("coverage") == "anchors"
    expected = asdict(key)
    found = {**KEY_DEFAULTS, **cache.manifest, "teacher": normalize_model_id(str(cache.manifest.get("teacher")))}
    problems = [
        f"{name}: {found.get(name)!r} → {expected[name]!r}"
        + (f" (the cache was {UNRECORDED_END})" if name == "end_token" and "end_token" not in cache.manifest else "")
        for name in (LEGACY_SETTINGS if legacy else SETTINGS)
        if found.get(name) != expected[name]
    ]
    if problems:
        return problems, np.empty(0, dtype=np.int64)
    exact = cache.manifest.get("texts_sha256") == key.texts_sha256
    if not legacy and not exact and cache.texts_crc() != cache.manifest.get("texts_crc32"):
        return ["its stored texts fail their checksum (the file is corrupted)"], np.empty(0, dtype=np.int64)
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


def build_with(cfg, path: str, texts: Sequence[str], key: CacheKey, chunk_size: int) -> TeacherCache:
    device = pick_device(cfg.device)
    return build_cache(path, texts, key, lambda: load_teacher(cfg, device, quiet=True), batch_size=cfg.cache_batch_size, chunk_size=chunk_size)


def checked(cfg, cache: TeacherCache, key: CacheKey, texts: Sequence[str]) -> tuple[TeacherCache, bool]:
    """(cache, repaired) after the open check; chunks failing their checksum are rebuilt (or fail under --strict_cache)."""
    bad, n_checked = cache.open_check()
    if n_checked < cache.n_chunks:
        note(f"Checked {n_checked} of {cache.n_chunks} chunk checksums of {cache.path} (a random sample: the cache is "
            "large); `talas cache --verify` checks all.")
    if not bad:
        return cache, False
    message = f"Teacher cache {cache.path}: {describe_bad(cache.manifest, cache.count, bad)} fail their checksum (the file changed after it was built)."
    if cfg.strict_cache:
        raise CacheError(message + " Pass --strict_cache false to rebuild only those from the teacher, or delete the file.")
    note(message + " Rebuilding only those from the teacher.", warning=True)
    exact = cache.manifest["texts_sha256"] == key.texts_sha256
    own_key = CacheKey(**key_of(cache.manifest))
    return build_with(cfg, cache.path, texts if exact else cache.texts(), own_key, int(cache.manifest["chunk_size"])), True


def ensure_cache(cfg, texts: Sequence[str], anchors: Sequence[str]) -> tuple[TeacherCache, np.ndarray]:
    """Return a valid cache for ``texts`` and the cache row of each text, building it if needed.

    Looks at a seed-format ``.pt`` at --cache_path, then every cache of the store (the exact path
    first); a new cache never replaces one of another key, it goes beside it under a keyed name.
    """
    key = cache_key(cfg, texts)
    setup = teacher_setup(cfg)
    if setup.line:
        note(setup.line)
    if setup.warning:
        note(setup.warning, warning=True)
    path = cache_file(cfg)
    if os.path.isdir(path):
        prepare_folder(path)  # says that a folder was given
    candidates = []
    if is_legacy_path(cfg.cache_path) and os.path.exists(cfg.cache_path):
        candidates.append(("seed-format cache", lambda: read_legacy(cfg.cache_path, anchors)))
    mismatches = []
    for file in store_files(path):
        found = file_format(file)
        if found != FORMAT and str(found).startswith("talas-teacher-cache/"):
            # An older TALAS wrote it (no chunk checksums): kept, never trusted, never overwritten.
            mismatches.append(f"Teacher cache at {file} has the older format {found} (no checksums); it is kept and not used.")
            continue
        candidates.append(("cache", lambda file=file: open_cache(file)))
    for label, opener in candidates:
        cache = opener()
        problems, rows = check_cache(cache, key, texts, anchors)
        if not problems:
            cache, repaired = checked(cfg, cache, key, texts) if label == "cache" else (cache, False)
            if repaired:
                note(f"Repaired the teacher cache at {cache.path}; its other chunks were kept.")
            else:
                note(f"Found valid teacher {label} at {cache.path} ({cache.count} embeddings, dim {cache.dim}); the teacher is not loaded.")
            if cache.manifest.get("coverage") == "anchors":
                note("  The seed format records no texts or max_length; its rows are matched to examples by position, KD applies to anchors only.")
            return cache, rows
        mismatches.append(f"Teacher {label} at {cache.path} does not match this run: " + "; ".join(problems) + ".")
    others = f" ({len(mismatches) - 1} other cache(s) beside it do not match either.)" if len(mismatches) > 1 else ""
    if mismatches:
        if cfg.strict_cache:
            raise CacheError(mismatches[0] + others + " Pass --strict_cache false to build the right one beside it "
                             "(nothing is overwritten), or point --cache_path elsewhere.")
    else:
        note(f"Cache not found at {path}. Pre-computing teacher embeddings...")
    target = from_rank0(claim_target(path, key, texts, cfg.cache_chunk_size) if dist_info()[0] == 0 else None)
    if mismatches:
        kept = " (the existing cache is kept)" if target != path else ""
        note(mismatches[0] + others + f" Rebuilding into {target}{kept}.", warning=True)
    cache = build_with(cfg, target, texts, key, cfg.cache_chunk_size)
    device = pick_device(cfg.device)
    note(f"Cached {cache.count} teacher embeddings to {target}")
    note(f"Teacher model freed from {'GPU ' if device.type == 'cuda' else ''}memory")
    return cache, cache.rows_for(texts)
