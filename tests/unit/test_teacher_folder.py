"""The teacher is what its folder says it is: a sentence-transformers folder embeds through its own
Pooling / Normalize modules and default prompt; a plain model pools as its architecture implies."""

import json
import logging
from dataclasses import replace

import numpy as np
import pytest

from talas.cache import ensure_cache
from talas.cache.ensure import cache_key
from talas.errors import ModelError
from talas.methods.talas import TalasConfig
from talas.models.export import describe_teacher, st_modules
from talas.models.folder import resolve_pooling

TEXTS = ["the cat sits on the mat", "a plane is taking off", "how do i reset my pin", "two dogs run across the field"]


def st_folder(path, model, mode: str, normalize: bool, prompt: str = ""):
    """A sentence-transformers folder around ``model``: Transformer + Pooling(mode) [+ Normalize] [+ default prompt]."""
    from sentence_transformers import SentenceTransformer

    modules = st_modules()
    transformer = modules.Transformer(str(model), max_seq_length=32)
    parts = [transformer, modules.Pooling(32, pooling_mode=mode)]
    if normalize:
        parts.append(modules.Normalize())
    prompts = {"prompts": {"document": prompt}, "default_prompt_name": "document"} if prompt else {}
    SentenceTransformer(modules=parts, device="cpu", **prompts).save(str(path))
    return path


def config(teacher, tmp_path, **kw):
    base = {"teacher_model_name": str(teacher), "cache_path": str(tmp_path / "c.safetensors"), "max_length": 32,
            "cache_batch_size": 3, "device": "cpu"}
    return replace(TalasConfig(), **{**base, **kw})


def cached_vectors(cfg) -> np.ndarray:
    cache, rows = ensure_cache(cfg, TEXTS, TEXTS)
    return np.asarray(cache.gather(rows).float())


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(autouse=True)
def talas_info(caplog):
    caplog.set_level(logging.INFO, logger="talas")


@pytest.mark.parametrize(("mode", "normalize", "prompt"), [("mean", True, ""), ("cls", False, "passage: ")])
def test_cached_vectors_equal_the_folders_own_encode(tiny_bert, tmp_path, caplog, mode, normalize, prompt):
    from sentence_transformers import SentenceTransformer

    folder = st_folder(tmp_path / "st", tiny_bert, mode, normalize, prompt)
    cfg = config(folder, tmp_path)
    vectors = cached_vectors(cfg)
    expected = SentenceTransformer(str(folder), device="cpu").encode(TEXTS)
    assert cosines(vectors, expected).min() >= 0.9999
    if normalize:  # the Normalize module is applied, not only the direction kept
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    key = cache_key(cfg, TEXTS)
    assert (key.pooling, key.normalize, key.prompt) == (mode, normalize, prompt)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("teacher pooling:")]
    assert lines and lines[0].startswith(f"teacher pooling: {mode}" + (", normalized" if normalize else ""))
    assert "sentence-transformers modules" in lines[0]


def test_explicit_flag_contradicting_the_folder_warns_once_and_wins(tiny_bert, tmp_path, caplog):
    folder = st_folder(tmp_path / "st", tiny_bert, "mean", True)
    cache, _ = ensure_cache(config(folder, tmp_path, pooling_method="cls"), TEXTS, TEXTS)
    assert cache.manifest["pooling"] == "cls"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "contradicts" in warnings[0] and "mean" in warnings[0], warnings


def test_plain_models_pool_as_their_architecture(tiny_bert, tiny_qwen3, tmp_path, caplog):
    bert = ensure_cache(config(tiny_bert, tmp_path / "bert"), TEXTS, TEXTS)[0].manifest
    qwen = ensure_cache(config(tiny_qwen3, tmp_path / "qwen"), TEXTS, TEXTS)[0].manifest
    assert (bert["pooling"], bert["normalize"]) == ("mean", False)
    assert (qwen["pooling"], qwen["end_token"]) == ("last_token", "<|endoftext|>")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("teacher pooling:")]
    assert lines[0].startswith("teacher pooling: mean (the teacher is a bert encoder") and "decoder" in lines[1], lines
    assert resolve_pooling(str(tiny_bert), "cls", "the student") == ("cls", "as passed")
    assert resolve_pooling(str(tiny_qwen3), "auto", "the student")[0] == "last_token"


def test_an_old_cache_is_served_only_when_the_resolved_key_is_the_same(tiny_bert, tmp_path, caplog):
    folder = st_folder(tmp_path / "st", tiny_bert, "mean", True)
    # Built before: mean pooling with --normalize_cache, the same vectors as the folder's own modules.
    first, _ = ensure_cache(config(folder, tmp_path, pooling_method="mean", normalize_cache=True), TEXTS, TEXTS)
    caplog.clear()
    again, _ = ensure_cache(config(folder, tmp_path), TEXTS, TEXTS)
    assert again.path == first.path and "Found valid teacher cache" in caplog.text


def test_unsupported_folder_modules_are_refused_clearly(tiny_bert, tmp_path):
    folder = st_folder(tmp_path / "st", tiny_bert, "max", False)
    with pytest.raises(ModelError, match="pooling max;"):
        cache_key(config(folder, tmp_path), TEXTS)
    assert cache_key(config(folder, tmp_path, pooling_method="mean"), TEXTS).pooling == "mean"  # passed: as before
    folder = st_folder(tmp_path / "dense", tiny_bert, "mean", False)
    listing = json.loads((folder / "modules.json").read_text())
    listing.append({"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (folder / "modules.json").write_text(json.dumps(listing))
    with pytest.raises(ModelError, match="Dense"):
        cache_key(config(folder, tmp_path), TEXTS)


def test_model_card_and_student_read_the_same_folder(tiny_bert, tmp_path):
    folder = st_folder(tmp_path / "st", tiny_bert, "cls", True, "passage: ")
    assert describe_teacher(config(folder, tmp_path)) == "cls pooling, normalized, prompt 'passage: '"
    assert describe_teacher(config(tiny_bert, tmp_path, pooling_method="last_token")) == "last_token pooling"
    assert resolve_pooling(str(folder), "auto", "the student")[0] == "cls"
