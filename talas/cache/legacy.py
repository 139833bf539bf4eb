"""Seed-format teacher caches: a ``.pt`` dict ``{"teacher_cls": [tensor, ...], "metadata": {...}}``.

    talas cache --convert cache/teacher_train.pt --train_data_path data/AllNLI.csv

The seed stored one vector per training example (its first text) and no record of the texts, so a
seed cache can only be matched to data by row count; its vectors serve as KD targets for anchors.
We read it with ``torch.load(weights_only=True)``: no arbitrary code runs from the file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from talas.cache.build import write_cache
from talas.cache.format import FORMAT, TeacherCache, texts_fingerprint
from talas.errors import CacheError

LEGACY_SUFFIXES = (".pt", ".pth")


def is_legacy_path(path: str) -> bool:
    return path.endswith(LEGACY_SUFFIXES)


def read_legacy(path: str, anchors: Sequence[str]) -> TeacherCache:
    """Read a seed cache for data whose i-th example has anchor text ``anchors[i]``."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for unreadable or unsafe pickles
        raise CacheError(
            f"{path} is not a readable seed-format cache ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}). "
            "Delete it, or pass --cache_path to a new file so the cache is rebuilt."
        ) from None
    if not isinstance(obj, dict) or "teacher_cls" not in obj:
        raise CacheError(f"{path} is not a seed-format cache: expected a dict with 'teacher_cls' and 'metadata'.")
    rows = obj["teacher_cls"]
    vectors = rows.float() if isinstance(rows, torch.Tensor) else torch.stack([torch.as_tensor(r).float().reshape(-1) for r in rows])
    meta = obj.get("metadata") or {}
    if vectors.shape[0] != len(anchors):
        raise CacheError(
            f"Seed cache {path} holds {vectors.shape[0]} embeddings but the training data has {len(anchors)} examples: "
            "it was built for other data. Delete it or pass a new --cache_path to rebuild."
        )
    first: dict[str, int] = {}
    for row, text in enumerate(anchors):
        first.setdefault(text, row)
    texts = list(first)
    vectors = vectors[list(first.values())]
    manifest = {
        "format": FORMAT,
        "teacher": meta.get("teacher_model"),
        "teacher_revision": None,
        "pooling": meta.get("pooling_method"),
        "normalize": meta.get("normalized"),
        "dtype": "float32",
        "max_length": None,
        "prompt": None,
        "dim": int(vectors.shape[1]),
        "count": len(texts),
        "texts_sha256": texts_fingerprint(texts),
        "coverage": "anchors",
        "source": os.path.abspath(path),
    }
    return TeacherCache(path, manifest, vectors.numpy(), "float32", lambda: texts)


def convert_legacy(path: str, out_path: str, anchors: Sequence[str]) -> TeacherCache:
    """Write a seed cache as a memory-mapped TALAS cache (anchors only, as the seed stored)."""
    legacy = read_legacy(path, anchors)
    return write_cache(out_path, legacy.manifest, legacy.texts(), torch.from_numpy(legacy.vectors))
