"""The teacher cache: values, keying, resume after a kill, legacy import, corruption."""

import logging
import os
from dataclasses import replace

import numpy as np
import pytest
import torch

from talas.cache import ensure_cache, open_cache
from talas.cache.build import build_cache
from talas.cache.ensure import cache_key
from talas.cache.format import texts_fingerprint
from talas.cache.legacy import convert_legacy, read_legacy
from talas.errors import CacheError
from talas.methods.talas import TalasConfig
from talas.models.encoder import Encoder

TEXTS = [f"sentence number {i} about {w}" for i, w in enumerate(["cats", "dogs", "the park", "a plane", "money"] * 7)]


def config(tiny_qwen3, tmp_path, **kw):
    base = {"teacher_model_name": str(tiny_qwen3), "pooling_method": "last_token", "cache_path": str(tmp_path / "c.safetensors"), "max_length": 32,
            "cache_batch_size": 4, "cache_chunk_size": 8, "device": "cpu"}
    return replace(TalasConfig(), **{**base, **kw})


def reference(cfg):
    teacher = Encoder.load(cfg.teacher_model_name, cfg.pooling_method, cfg.max_length, cfg.teacher_prompt)
    return teacher.encode(TEXTS, batch_size=3)


@pytest.fixture(autouse=True)
def talas_info(caplog):
    """The cache reports through the ``talas`` loggers at INFO; the tests read those records."""
    caplog.set_level(logging.INFO, logger="talas")


def test_built_cache_equals_teacher_vectors_and_is_memory_mapped(tiny_qwen3, tmp_path):
    cfg = config(tiny_qwen3, tmp_path)
    cache, rows = ensure_cache(cfg, TEXTS, TEXTS)
    assert isinstance(cache.vectors, np.memmap)
    assert rows.tolist() == list(range(len(TEXTS)))
    assert cache.count == len(TEXTS) and cache.dim == 48
    expected = reference(cfg)
    assert torch.allclose(cache.gather(np.arange(len(TEXTS))), expected, atol=1e-5)
    picked = np.array([5, 0, 33, 5])
    assert torch.allclose(cache.gather(picked), expected[picked], atol=1e-5)
    reopened = open_cache(cfg.cache_path)
    assert reopened.texts() == TEXTS
    assert reopened.manifest["texts_sha256"] == texts_fingerprint(TEXTS)
    from safetensors import safe_open  # the file is plain safetensors for other tools

    with safe_open(cfg.cache_path, framework="pt") as handle:
        assert torch.allclose(handle.get_tensor("embeddings"), expected, atol=1e-5)


# Unit roundoff of each storage type: round-to-nearest is off by at most half a unit in the last place.
ROUNDOFF = {"float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}


def assert_stored(cached: torch.Tensor, exact: torch.Tensor, dtype: str) -> None:
    """``cached`` is ``exact`` rounded to ``dtype`` (up to float32 noise between two batchings of the teacher)."""
    error = (cached - exact).abs()
    bound = ROUNDOFF[dtype] * exact.abs() + 1e-5
    assert (error <= bound).all(), f"{dtype}: worst error {error.max().item():.3g}, {(error / exact.abs()).max().item():.3g} relative"


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_caches(tiny_qwen3, tmp_path, dtype):
    cfg = config(tiny_qwen3, tmp_path, cache_dtype=dtype)
    cache, _ = ensure_cache(cfg, TEXTS, TEXTS)
    exact = reference(cfg)
    assert exact.abs().min() > 1e-3  # relative bounds are meaningful: no value is tiny
    assert_stored(cache.gather(np.arange(len(TEXTS))), exact, dtype)


def test_normalized_cache(tiny_qwen3, tmp_path):
    cache, _ = ensure_cache(config(tiny_qwen3, tmp_path, normalize_cache=True), TEXTS, TEXTS)
    norms = cache.gather(np.arange(len(TEXTS))).norm(dim=-1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)


def test_valid_cache_is_reused_without_loading_the_teacher(tiny_qwen3, tmp_path, monkeypatch, caplog):
    cfg = config(tiny_qwen3, tmp_path)
    ensure_cache(cfg, TEXTS, TEXTS)
    import talas.models.encoder

    def refuse(*args, **kwargs):
        raise AssertionError("the teacher was loaded although the cache is valid")

    monkeypatch.setattr(talas.models.encoder, "load_model", refuse)
    caplog.clear()
    cache, _ = ensure_cache(cfg, TEXTS, TEXTS)
    messages = caplog.messages
    assert "Found valid teacher cache" in messages[0]
    # a subset of the cached texts is served by text lookup, still without the teacher
    _, rows = ensure_cache(cfg, TEXTS[3:9][::-1], TEXTS[3:9][::-1])
    assert rows.tolist() == list(range(3, 9))[::-1]


@pytest.mark.parametrize(
    "change,field",
    [
        ({"pooling_method": "mean"}, "pooling"),
        ({"max_length": 4}, "max_length"),  # shorter than every text: truncation changes every vector
        ({"teacher_prompt": "Instruct: embed\nQuery: "}, "prompt"),
        ({"normalize_cache": True}, "normalize"),
        ({"cache_dtype": "float16"}, "dtype"),
    ],
)
def test_key_change_triggers_rebuild_with_the_new_setting(tiny_qwen3, tmp_path, change, field, caplog):
    old, _ = ensure_cache(config(tiny_qwen3, tmp_path), TEXTS, TEXTS)
    old_vectors = old.gather(np.arange(len(TEXTS)))
    caplog.clear()
    cfg = config(tiny_qwen3, tmp_path, **change)
    cache, rows = ensure_cache(cfg, TEXTS, TEXTS)
    messages = caplog.messages
    assert any("does not match" in m and field in m for m in messages), messages
    # the rebuilt vectors are the teacher's under the new setting, computed here independently
    exact = reference(cfg)
    if cfg.normalize_cache:
        exact = torch.nn.functional.normalize(exact, dim=-1)
    got = cache.gather(rows)
    assert_stored(got, exact, cfg.cache_dtype)
    assert (got - old_vectors).abs().max() > (1e-4 if field == "dtype" else 1e-2)  # and the setting did change them


def test_resaved_teacher_at_the_same_path_triggers_rebuild(tmp_path, caplog):
    """Fine-tuning a teacher and saving it over its folder changes only its revision (a hash of the files)."""
    from tiny_models import build_qwen3

    teacher = build_qwen3(tmp_path / "teacher", seed=1)
    cfg = config(teacher, tmp_path)
    old, _ = ensure_cache(cfg, TEXTS, TEXTS)
    old_vectors = old.gather(np.arange(len(TEXTS)))
    build_qwen3(tmp_path / "teacher", seed=2)  # same path, same architecture and tokenizer, new weights
    caplog.clear()
    cache, rows = ensure_cache(cfg, TEXTS, TEXTS)
    messages = caplog.messages
    assert any("teacher_revision" in m and "Rebuilding" in m for m in messages), messages
    got = cache.gather(rows)
    assert torch.allclose(got, reference(cfg), atol=1e-5)
    assert (got - old_vectors).abs().max() > 1e-2


def test_changed_row_or_teacher_triggers_rebuild_and_strict_mode_fails(tiny_qwen3, tmp_path, caplog):
    from tiny_models import build_qwen3

    cfg = config(tiny_qwen3, tmp_path)
    ensure_cache(cfg, TEXTS, TEXTS)
    changed = TEXTS[:10] + ["a brand new sentence"] + TEXTS[11:]
    caplog.clear()
    cache, rows = ensure_cache(cfg, changed, changed)
    messages = caplog.messages
    assert any("training texts changed" in m for m in messages)
    assert cache.texts() == changed and rows.tolist() == list(range(len(changed)))

    other = build_qwen3(tmp_path / "other_teacher", seed=5)
    with pytest.raises(CacheError, match="teacher: .*strict_cache"):
        ensure_cache(replace(cfg, teacher_model_name=str(other), strict_cache=True), changed, changed)
    caplog.clear()
    ensure_cache(replace(cfg, teacher_model_name=str(other)), changed, changed)
    messages = caplog.messages
    assert any("teacher:" in m and "Rebuilding" in m for m in messages)


class Exploding(Encoder):
    """A real teacher that dies (like a killed process) after a given number of batches."""

    calls = 0
    limit = 10**9

    def forward(self, features):
        Exploding.calls += 1
        if Exploding.calls > Exploding.limit:
            raise KeyboardInterrupt
        return super().forward(features)


def test_killed_build_resumes_without_redoing_finished_chunks(tiny_qwen3, tmp_path, caplog):
    cfg = config(tiny_qwen3, tmp_path)
    key = cache_key(cfg, TEXTS)

    def load():
        base = Encoder.load(cfg.teacher_model_name, cfg.pooling_method, cfg.max_length)
        return Exploding(base.model, base.tokenizer, base.pooling, base.max_length)

    Exploding.calls, Exploding.limit = 0, 5  # 8 texts per chunk, 4 per batch: dies inside chunk 3
    with pytest.raises(KeyboardInterrupt):
        build_cache(cfg.cache_path, TEXTS, key, load, batch_size=4, chunk_size=8, progress=False)
    assert not os.path.exists(cfg.cache_path) and os.path.exists(cfg.cache_path + ".partial")
    Exploding.calls, Exploding.limit = 0, 10**9
    caplog.clear()
    cache = build_cache(cfg.cache_path, TEXTS, key, load, batch_size=4, chunk_size=8, progress=False)
    messages = caplog.messages
    assert "2/5 chunks already done" in messages[0]
    assert Exploding.calls == 5  # 35 texts = 9 batches; the 2 finished chunks (4 batches) are not redone
    assert torch.allclose(cache.gather(np.arange(len(TEXTS))), reference(cfg), atol=1e-5)
    assert not os.path.exists(cfg.cache_path + ".partial")
    assert not [f for f in os.listdir(tmp_path) if "progress" in f]


def test_truncated_and_corrupted_files_give_clear_errors(tiny_qwen3, tmp_path):
    cfg = config(tiny_qwen3, tmp_path)
    ensure_cache(cfg, TEXTS, TEXTS)
    raw = open(cfg.cache_path, "rb").read()
    with open(cfg.cache_path, "wb") as handle:
        handle.write(raw[:-100])
    with pytest.raises(CacheError, match="truncated or corrupted.*Delete it"):
        ensure_cache(cfg, TEXTS, TEXTS)
    with open(cfg.cache_path, "wb") as handle:
        handle.write(b"\x00garbage" * 10)
    with pytest.raises(CacheError, match="not a readable TALAS cache"):
        ensure_cache(cfg, TEXTS, TEXTS)
    # NaN rows (bit rot) are caught at read time
    with open(cfg.cache_path, "wb") as handle:
        handle.write(raw)
    cache = open_cache(cfg.cache_path)
    start = len(raw) - cache.vectors.nbytes - (len(TEXTS) + 1) * 8 - sum(len(t.encode()) for t in TEXTS)
    patched = bytearray(raw)
    patched[start : start + 4] = np.array([np.nan], dtype=np.float32).tobytes()
    with open(cfg.cache_path, "wb") as handle:
        handle.write(bytes(patched))
    with pytest.raises(CacheError, match="NaN"):
        open_cache(cfg.cache_path).gather(np.array([0]))


def test_seed_format_pt_cache_is_read_and_converted(tiny_qwen3, tmp_path, monkeypatch, caplog):
    anchors = TEXTS[:6] + TEXTS[:2]  # the seed stores one vector per example, duplicates included
    vectors = torch.randn(len(anchors), 48)
    legacy_path = tmp_path / "teacher_train.pt"
    torch.save({"teacher_cls": list(vectors), "metadata": {
        "teacher_model": str(tiny_qwen3), "pooling_method": "last_token", "normalized": False,
        "dtype": "float32", "num_samples": len(anchors)}}, legacy_path)
    legacy = read_legacy(str(legacy_path), anchors)
    assert legacy.count == 6 and torch.allclose(legacy.gather(np.arange(6)), vectors[:6])

    cfg = config(tiny_qwen3, tmp_path, cache_path=str(legacy_path))
    import talas.models.encoder

    monkeypatch.setattr(talas.models.encoder, "load_model", lambda *a, **k: pytest.fail("teacher loaded"))
    texts = anchors[:6] + ["a positive text"]
    caplog.clear()
    cache, rows = ensure_cache(cfg, texts, anchors)
    messages = caplog.messages
    assert "seed-format cache" in messages[0]
    assert rows.tolist() == [0, 1, 2, 3, 4, 5, -1]  # the positive has no seed vector

    converted = convert_legacy(str(legacy_path), str(tmp_path / "converted.safetensors"), anchors)
    assert torch.allclose(converted.gather(np.arange(6)), vectors[:6])
    assert converted.texts() == anchors[:6]

    with pytest.raises(CacheError, match="holds 8 embeddings but the training data has 3"):
        read_legacy(str(legacy_path), anchors[:3])
    (tmp_path / "bad.pt").write_bytes(b"not a pickle")
    with pytest.raises(CacheError, match="not a readable seed-format cache"):
        read_legacy(str(tmp_path / "bad.pt"), anchors)


UNPICKLED = []


def record_unpickling(value):
    """What unpickling a Payload calls: a pickle may name any importable function (os.system too)."""
    UNPICKLED.append(value)
    return value


class Payload:
    def __reduce__(self):
        return (record_unpickling, ("code ran",))


def test_seed_format_pt_holding_a_pickled_object_is_refused_without_running_it(tmp_path):
    anchors = TEXTS[:3]
    path = tmp_path / "teacher_train.pt"
    torch.save({"teacher_cls": list(torch.randn(3, 48)), "metadata": {"teacher_model": "t"}, "extra": Payload()}, path)
    UNPICKLED.clear()
    with pytest.raises(CacheError, match="not a readable seed-format cache"):
        read_legacy(str(path), anchors)
    assert UNPICKLED == []


def test_legacy_cache_for_another_teacher_is_rebuilt(tiny_qwen3, tmp_path, caplog):
    legacy_path = tmp_path / "teacher_train.pt"
    torch.save({"teacher_cls": list(torch.randn(3, 48)), "metadata": {
        "teacher_model": "Qwen/Qwen3-Embedding-0.6B", "pooling_method": "last_token", "normalized": False}}, legacy_path)
    cfg = config(tiny_qwen3, tmp_path, cache_path=str(legacy_path))
    caplog.clear()
    cache, _ = ensure_cache(cfg, TEXTS[:3], TEXTS[:3])
    messages = caplog.messages
    assert any("seed-format cache" in m and "teacher:" in m for m in messages)
    assert cache.path == str(tmp_path / "teacher_train.safetensors")
