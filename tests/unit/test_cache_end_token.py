"""The cache key records the token a last-token teacher's texts end with, so a cache built before TALAS
recorded it (a Qwen3-Embedding cache from before the end-token fix pooled <|im_end|> appended after
<|endoftext|>) is never served silently, while older mean/cls caches keep working unchanged."""

import hashlib
import json
import logging
import os
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch
from test_cache import TEXTS, config  # the same texts and tiny-teacher cache config
from test_cache_integrity import overwrite_rows
from test_encoders import save_bpe

from talas.cache import ensure_cache
from talas.cache.build import build_cache, write_cache
from talas.cache.ensure import cache_key
from talas.cache.store import claim_target, describe, format_listing, keyed_path
from talas.errors import CacheError
from talas.models.encoder import Encoder
from talas.models.teacher import teacher_end_token


@pytest.fixture(autouse=True)
def talas_info(caplog):
    """The cache reports through the ``talas`` loggers at INFO; the tests read those records."""
    caplog.set_level(logging.INFO, logger="talas")

def reference(cfg):
    return Encoder.load(cfg.teacher_model_name, cfg.pooling_method, cfg.max_length, cfg.teacher_prompt).encode(TEXTS)


def old_manifest(key) -> dict:
    """The manifest TALAS wrote before the key had an end token."""
    return {name: value for name, value in asdict(key).items() if name != "end_token"}


def refuse_teacher(monkeypatch):
    import talas.models.encoder

    def refuse(*args, **kwargs):
        raise AssertionError("the teacher was loaded although the cache is valid")

    monkeypatch.setattr(talas.models.encoder, "load_model", refuse)


def test_last_token_key_records_the_end_token_the_encoder_feeds(tiny_qwen3, tmp_path):
    cfg = config(tiny_qwen3, tmp_path, teacher_prompt="Query: ")
    key = cache_key(cfg, TEXTS)
    teacher = Encoder.load(cfg.teacher_model_name, cfg.pooling_method, cfg.max_length, cfg.teacher_prompt)
    end = teacher.tokenizer.convert_tokens_to_ids(key.end_token)
    assert key.end_token == "<|endoftext|>"
    assert all(ids[-1] == end for ids in teacher.token_ids(TEXTS + [" ".join(TEXTS)]))  # truncated too
    assert key.stored()["end_token"] == key.end_token and key.short() != replace(key, end_token="").short()
    for pooling in ("mean", "cls"):  # nothing appended, nothing recorded
        assert cache_key(replace(cfg, pooling_method=pooling), TEXTS).end_token == ""


@pytest.mark.parametrize("template,end", [("$A <|endoftext|>", "<|endoftext|>"), (None, "<|im_end|>")],
                         ids=["qwen3_embedding", "qwen2.5"])
def test_end_token_is_the_tokenizers_own_or_the_appended_eos(tmp_path, template, end):
    """Qwen3-Embedding's tokenizer ends texts with <|endoftext|> (its eos_token is <|im_end|>); Qwen2.5's appends
    nothing and the Encoder appends its EOS <|im_end|>."""
    tokenizer = save_bpe(tmp_path, template, eos="<|im_end|>", pad="<|endoftext|>")
    cfg = config(tmp_path, tmp_path)
    assert teacher_end_token(cfg) == end
    ids = Encoder(torch.nn.Identity(), tokenizer, "last_token", 32).token_ids(TEXTS)
    assert {x[-1] for x in ids} == {tokenizer.convert_tokens_to_ids(end)}


def test_last_token_cache_without_an_end_token_is_rebuilt_beside_it(tiny_qwen3, tmp_path, caplog):
    cfg = config(tiny_qwen3, tmp_path)
    key = cache_key(cfg, TEXTS)
    wrong = torch.randn(len(TEXTS), 48)  # the vectors of another token, as a pre-fix Qwen3-Embedding cache holds
    write_cache(cfg.cache_path, old_manifest(key), TEXTS, wrong, chunk_size=8)
    before = open(cfg.cache_path, "rb").read()
    assert "end token not recorded" in format_listing([describe(cfg.cache_path)])

    why = r"end_token: '' → '<\|endoftext\|>' \(the cache was built before TALAS recorded the token"
    with pytest.raises(CacheError, match=why + r".*pooled the wrong token.*--strict_cache false"):
        ensure_cache(replace(cfg, strict_cache=True), TEXTS, TEXTS)

    caplog.clear()
    cache, rows = ensure_cache(cfg, TEXTS, TEXTS)
    messages = caplog.messages
    assert any("does not match" in m and "end_token" in m and "built before TALAS recorded" in m
               and "Rebuilding into" in m for m in messages), messages
    assert cache.path == keyed_path(cfg.cache_path, key) != cfg.cache_path
    assert open(cfg.cache_path, "rb").read() == before  # the old file is kept, untouched
    assert cache.manifest["end_token"] == "<|endoftext|>"
    assert torch.allclose(cache.gather(rows), reference(cfg), atol=1e-5)
    assert "end token '<|endoftext|>'" in format_listing([describe(cache.path)])


def test_mean_cache_from_before_the_end_token_field_is_served_under_its_old_name(tiny_qwen3, tmp_path, monkeypatch, caplog):
    cfg = config(tiny_qwen3, tmp_path, pooling_method="mean")
    key = cache_key(cfg, TEXTS)
    old = old_manifest(key)
    # the name an older TALAS gave this key's cache beside another one: a hash of the fields it knew
    old_name = str(tmp_path / f"c.{hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()[:12]}.safetensors")
    assert keyed_path(cfg.cache_path, key) == old_name
    vectors = reference(cfg)
    write_cache(old_name, old, TEXTS, vectors, chunk_size=8)
    before = open(old_name, "rb").read()

    with monkeypatch.context() as patch:
        refuse_teacher(patch)
        caplog.clear()
        cache, rows = ensure_cache(replace(cfg, strict_cache=True), TEXTS, TEXTS)
        messages = caplog.messages
    assert messages == [f"Found valid teacher cache at {old_name} ({len(TEXTS)} embeddings, dim 48); the teacher is not loaded."]
    assert rows.tolist() == list(range(len(TEXTS))) and torch.equal(cache.gather(rows), vectors)
    assert open(old_name, "rb").read() == before
    assert [f for f in os.listdir(tmp_path) if ".safetensors" in f] == [os.path.basename(old_name)]  # nothing built

    # the store and the builder take it for this key's finished cache too: nothing to claim, nothing to embed
    assert claim_target(cfg.cache_path, key, TEXTS, 8) == old_name and not os.path.exists(cfg.cache_path + ".partial")
    caplog.clear()
    assert build_cache(old_name, TEXTS, key, lambda: pytest.fail("teacher loaded")).path == old_name
    assert caplog.messages == []

    # a damaged chunk of it is repaired in place, under the key its manifest holds (no end token)
    overwrite_rows(old_name, [3], [np.zeros(48)])
    caplog.clear()
    cache, rows = ensure_cache(cfg, TEXTS, TEXTS)
    messages = caplog.messages
    assert cache.path == old_name and any("Repaired" in m for m in messages), messages
    assert "end_token" not in cache.manifest
    assert torch.allclose(cache.gather(rows), vectors, atol=1e-5)
