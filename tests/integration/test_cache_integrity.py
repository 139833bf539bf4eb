"""The teacher cache never loses or falsifies work: keyed store, checksums, repair, listing, pruning, clear errors."""

import errno
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from talas.cache import ensure_cache, open_cache
from talas.cache.build import build_cache
from talas.cache.ensure import cache_key
from talas.cache.format import DTYPES
from talas.cli import main
from talas.errors import CacheError
from talas.methods.talas import TalasConfig
from talas.models.encoder import Encoder

TEXTS = [f"sentence number {i} about {w}" for i, w in enumerate(["cats", "dogs", "the park", "a plane", "money"] * 8)]
# Chunks group rows by text length (longest first, ties in row order): ORDER[8 * c : 8 * c + 8] is chunk c.
ORDER = sorted(range(len(TEXTS)), key=lambda i: -len(TEXTS[i].encode()))
OTHER = [f"an unrelated line {i} on {w}" for i, w in enumerate(["rain", "music", "trains"] * 6)]


def config(tiny_qwen3, tmp_path, **kw):
    base = {"teacher_model_name": str(tiny_qwen3), "cache_path": str(tmp_path / "cache" / "t.safetensors"), "max_length": 32,
            "cache_batch_size": 4, "cache_chunk_size": 8, "device": "cpu"}
    return replace(TalasConfig(), **{**base, **kw})


@pytest.fixture(autouse=True)
def talas_info(caplog):
    """The cache reports through the ``talas`` loggers at INFO; the tests read those records."""
    caplog.set_level(logging.INFO, logger="talas")


@pytest.fixture
def forwards(monkeypatch):
    """Counts the texts that go through the real teacher forward (not the builder's own report)."""
    count = {"texts": 0}
    original = Encoder.forward

    def counting(self, features):
        count["texts"] += int(features["input_ids"].shape[0])
        return original(self, features)

    monkeypatch.setattr(Encoder, "forward", counting)
    return count


def overwrite_rows(path, rows, values):
    cache = open_cache(path)
    width = cache.dim * DTYPES[cache.dtype][2]
    start = cache.data_start + cache.tensors["embeddings"]["data_offsets"][0]
    with open(path, "r+b") as handle:
        for row, value in zip(rows, values, strict=True):
            handle.seek(start + row * width)
            handle.write(np.asarray(value, dtype=DTYPES[cache.dtype][1]).tobytes())


def test_rebuild_for_other_data_keeps_the_first_cache_and_both_are_found(tiny_qwen3, tmp_path, forwards, caplog):
    cfg = config(tiny_qwen3, tmp_path)
    first, _ = ensure_cache(cfg, TEXTS, TEXTS)
    before = open(cfg.cache_path, "rb").read()
    caplog.clear()
    second, _ = ensure_cache(cfg, OTHER, OTHER)
    messages = caplog.messages
    assert second.path != cfg.cache_path and os.path.basename(second.path).startswith("t.")
    assert open(cfg.cache_path, "rb").read() == before  # the first cache is untouched
    assert any("Rebuilding into" in m and "is kept" in m for m in messages)
    forwards["texts"] = 0
    for texts, path in ((TEXTS, cfg.cache_path), (OTHER, second.path), (TEXTS[5:20][::-1], cfg.cache_path)):
        caplog.clear()
        cache, rows = ensure_cache(cfg, texts, texts)
        messages = caplog.messages
        assert cache.path == path and "Found valid teacher cache" in messages[-1]
        assert cache.texts()[rows[0]] == texts[0]
    assert forwards["texts"] == 0  # every later run found its cache: no teacher forward at all


@pytest.mark.parametrize("spelling", ["trailing slash", "relative", "home"])
def test_teacher_path_spellings_share_one_key(tiny_qwen3, tmp_path, monkeypatch, spelling):
    base = cache_key(config(tiny_qwen3, tmp_path), TEXTS)
    if spelling == "trailing slash":
        name = str(tiny_qwen3) + "/"
    elif spelling == "relative":
        monkeypatch.chdir(tiny_qwen3.parent)
        name = os.path.join(".", tiny_qwen3.name)
    else:
        monkeypatch.setenv("HOME", str(tiny_qwen3.parent))
        name = "~/" + tiny_qwen3.name
    assert cache_key(config(tiny_qwen3, tmp_path, teacher_model_name=name), TEXTS) == base


@pytest.mark.parametrize("damage", ["zeros", "random finite"])
def test_overwritten_rows_are_caught_and_only_their_chunks_rebuilt(tiny_qwen3, tmp_path, forwards, damage, caplog):
    cfg = config(tiny_qwen3, tmp_path)
    ensure_cache(cfg, TEXTS, TEXTS)
    good = open(cfg.cache_path, "rb").read()
    rng = np.random.default_rng(3)
    values = [np.zeros(48) if damage == "zeros" else rng.standard_normal(48) for _ in range(2)]
    overwrite_rows(cfg.cache_path, [ORDER[9], ORDER[33]], values)  # one row of chunk 1, one of chunk 4

    with pytest.raises(CacheError, match=r"chunks \[1, 4\] \(16 rows\) fail their checksum.*--strict_cache false"):
        ensure_cache(replace(cfg, strict_cache=True), TEXTS, TEXTS)
    forwards["texts"] = 0
    caplog.clear()
    cache, _ = ensure_cache(cfg, TEXTS, TEXTS)
    messages = caplog.messages
    assert any("chunks [1, 4]" in m and "Rebuilding only those" in m for m in messages)
    assert forwards["texts"] == 16  # two chunks of 8 texts, nothing else
    assert open(cfg.cache_path, "rb").read() == good  # byte-identical to the undamaged file
    assert "Repaired" in messages[-1] and cache.open_check() == ([], 5)


def test_damaged_superset_cache_is_repaired_from_its_own_texts(tiny_qwen3, tmp_path, forwards):
    cfg = config(tiny_qwen3, tmp_path)
    ensure_cache(cfg, TEXTS, TEXTS)
    good = open(cfg.cache_path, "rb").read()
    overwrite_rows(cfg.cache_path, [2], [np.ones(48)])
    forwards["texts"] = 0
    subset = TEXTS[20:30]
    cache, rows = ensure_cache(cfg, subset, subset)
    assert forwards["texts"] == 8 and open(cfg.cache_path, "rb").read() == good
    assert rows.tolist() == list(range(20, 30))


def test_damaged_texts_region_is_caught_and_written_back_without_the_teacher(tiny_qwen3, tmp_path, forwards, caplog):
    cfg = config(tiny_qwen3, tmp_path)
    cache, _ = ensure_cache(cfg, TEXTS, TEXTS)
    good = open(cfg.cache_path, "rb").read()
    raw = bytearray(good)
    raw[-3] ^= 0x20  # a letter of the last text changes case
    open(cfg.cache_path, "wb").write(bytes(raw))
    assert open_cache(cfg.cache_path).verify() == [-1]
    caplog.clear()
    ensure_cache(cfg, TEXTS[:4], TEXTS[:4])  # as a superset it is refused, not misread
    assert any("stored texts fail their checksum" in m for m in caplog.messages)
    forwards["texts"] = 0
    ensure_cache(cfg, TEXTS, TEXTS)  # the exact texts: their hash matches the key, so they are written back
    assert forwards["texts"] == 0 and open(cfg.cache_path, "rb").read() == good


def test_open_check_samples_large_caches_and_always_includes_the_last_chunk(tiny_qwen3, tmp_path):
    cfg = config(tiny_qwen3, tmp_path)
    cache, _ = ensure_cache(cfg, TEXTS, TEXTS)
    one_chunk = 8 * 48 * 4
    assert cache.open_check(budget=5 * one_chunk) == ([], 5)  # fits: every chunk
    overwrite_rows(cfg.cache_path, [ORDER[39]], [np.ones(48)])
    bad, checked = open_cache(cfg.cache_path).open_check(budget=one_chunk)
    assert bad == [4] and checked == 2  # one sampled chunk plus the last one


def test_gather_refuses_an_all_zero_row(tiny_qwen3, tmp_path):
    cfg = config(tiny_qwen3, tmp_path)
    ensure_cache(cfg, TEXTS, TEXTS)
    overwrite_rows(cfg.cache_path, [6], [np.zeros(48)])
    cache = open_cache(cfg.cache_path)
    assert cache.gather(np.array([5, 7])).shape == (2, 48)
    with pytest.raises(CacheError, match=r"all-zero row \(row 6\).*talas cache --verify"):
        cache.gather(np.array([5, 6]))


def cli(tiny_qwen3, tmp_path, *extra):
    return ["cache", "--teacher_model_name", str(tiny_qwen3), "--max_length", "32", "--cache_chunk_size", "8",
            "--cache_batch_size", "4", "--device", "cpu", "--cache_path", str(tmp_path / "cache" / "t.safetensors"), *extra]


def write_csv(path, texts):
    path.write_text("text\n" + "\n".join(texts) + "\n")
    return str(path)


def test_cli_list_verify_and_prune(tiny_qwen3, tmp_path, capsys):
    a, b = write_csv(tmp_path / "a.csv", TEXTS), write_csv(tmp_path / "b.csv", OTHER)
    assert main(cli(tiny_qwen3, tmp_path, "--train_data_path", a)) == 0
    assert main(cli(tiny_qwen3, tmp_path, "--train_data_path", b)) == 0
    first = str(tmp_path / "cache" / "t.safetensors")
    second = open_cache(next(f for f in (tmp_path / "cache").glob("t.*.safetensors"))).path
    os.utime(first, (1e9, 1e9))  # the first cache is old (2001)
    capsys.readouterr()

    assert main(cli(tiny_qwen3, tmp_path, "--list")) == 0
    listing = capsys.readouterr().out.splitlines()
    assert len(listing) == 2 and "complete" in listing[0] and f"{len(TEXTS)} x 48" in listing[0]
    assert str(tiny_qwen3) in listing[0] and "2001-09-09" in listing[0] and f"{len(OTHER)} x 48" in listing[1]
    assert all("last_token end token '<|endoftext|>'" in line for line in listing)

    assert main(cli(tiny_qwen3, tmp_path, "--verify")) == 0
    assert capsys.readouterr().out.count("ok ") == 2
    overwrite_rows(second, [3], [np.ones(48)])
    assert main(cli(tiny_qwen3, tmp_path, "--verify")) == 2
    captured = capsys.readouterr()
    assert "FAILED" in captured.out and "chunks [" in captured.out and "failed the check" in captured.err

    assert main(cli(tiny_qwen3, tmp_path, "--prune")) == 2
    assert "--prune needs a selection" in capsys.readouterr().err
    assert main(cli(tiny_qwen3, tmp_path, "--prune", "--older_than", "30", "--dry_run")) == 0
    assert "Would delete " + first in capsys.readouterr().out and os.path.exists(first)
    assert main(cli(tiny_qwen3, tmp_path, "--prune", "--keep_newest", "1")) == 0
    assert "Deleted " + first in capsys.readouterr().out
    assert not os.path.exists(first) and os.path.exists(second)
    assert main(cli(tiny_qwen3, tmp_path, "--prune", "--name", "nothing.safetensors")) == 2
    assert "No teacher cache named 'nothing.safetensors'" in capsys.readouterr().err


def test_cache_path_errors_are_one_line(tiny_qwen3, tmp_path, capsys, monkeypatch):
    data = write_csv(tmp_path / "a.csv", TEXTS[:8])
    (tmp_path / "cache").mkdir()
    base = cli(tiny_qwen3, tmp_path, "--train_data_path", data)
    assert main([*base, "--cache_path", str(tmp_path / "cache")]) == 2
    assert "is a folder; pass a file path inside it" in capsys.readouterr().err
    (tmp_path / "plain").write_text("x")
    assert main([*base, "--cache_path", str(tmp_path / "plain" / "t.safetensors")]) == 2
    assert "lies under a regular file, not a folder" in capsys.readouterr().err

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(os, "makedirs", read_only)
    assert main([*base, "--cache_path", str(tmp_path / "ro" / "t.safetensors")]) == 2
    assert "Cannot write the teacher cache" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_unwritable_cache_folder(tiny_qwen3, tmp_path, capsys):
    data = write_csv(tmp_path / "a.csv", TEXTS[:8])
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o500)
    assert main(cli(tiny_qwen3, tmp_path, "--train_data_path", data, "--cache_path", str(folder / "t.safetensors"))) == 2
    assert "permission denied" in capsys.readouterr().err


def enospc_on(suffix, monkeypatch):
    """os.fsync fails with ENOSPC for files whose name ends with ``suffix`` (a disk filling at that write)."""
    real = os.fsync

    def fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(suffix):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def test_full_disk_at_allocation_leaves_nothing(tiny_qwen3, tmp_path, monkeypatch):
    cfg = config(tiny_qwen3, tmp_path)

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(CacheError, match=r"Out of disk space writing the teacher cache .*needs .* MiB"):
        ensure_cache(cfg, TEXTS, TEXTS)
    assert [f.name for f in (tmp_path / "cache").iterdir() if "lock" not in f.name] == []


def test_full_disk_when_sealing_keeps_the_chunks_and_nothing_passes_as_valid(tiny_qwen3, tmp_path, monkeypatch, forwards, caplog):
    cfg = config(tiny_qwen3, tmp_path)
    real_fsync = os.fsync
    enospc_on(".safetensors.partial", monkeypatch)
    with pytest.raises(CacheError, match="Out of disk space.*finished chunks are kept"):
        ensure_cache(cfg, TEXTS, TEXTS)
    assert not os.path.exists(cfg.cache_path)
    monkeypatch.setattr(os, "fsync", real_fsync)
    forwards["texts"] = 0
    caplog.clear()
    cache, _ = ensure_cache(cfg, TEXTS, TEXTS)
    messages = caplog.messages
    assert forwards["texts"] == 0 and "5/5 chunks already done" in " ".join(messages)
    assert cache.verify() == []


def test_a_second_build_waits_for_the_lock_then_reuses_the_finished_cache(tiny_qwen3, tmp_path, caplog):
    cfg = config(tiny_qwen3, tmp_path)
    ensure_cache(cfg, TEXTS, TEXTS)
    path = str(tmp_path / "copy.safetensors")
    # Another process holds the build lock and finishes the file just before it lets go.
    holder = subprocess.Popen([sys.executable, "-c", (
        "import shutil, sys, time; from filelock import FileLock\n"
        "with FileLock(sys.argv[2] + '.lock'):\n"
        "    print('held', flush=True); time.sleep(1.0); shutil.copy(sys.argv[1], sys.argv[2])\n"),
        cfg.cache_path, path], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    caplog.clear()
    cache = build_cache(path, TEXTS, cache_key(cfg, TEXTS), lambda: pytest.fail("teacher loaded"), progress=False)
    messages = caplog.messages
    assert holder.wait(timeout=30) == 0
    assert "waiting for it to finish" in messages[0] and "reusing it" in messages[-1]
    assert cache.verify() == []


def test_a_cache_of_the_older_format_is_kept_and_a_new_one_built_beside_it(tiny_qwen3, tmp_path, caplog):
    cfg = config(tiny_qwen3, tmp_path)
    ensure_cache(cfg, TEXTS, TEXTS)
    old = open(cfg.cache_path, "rb").read().replace(b"talas-teacher-cache/2", b"talas-teacher-cache/1")
    open(cfg.cache_path, "wb").write(old)
    caplog.clear()
    cache, _ = ensure_cache(cfg, TEXTS, TEXTS)
    messages = caplog.messages
    assert any("older format talas-teacher-cache/1" in m and "is kept" in m for m in messages)
    assert cache.path != cfg.cache_path and open(cfg.cache_path, "rb").read() == old
    (tmp_path / "strict").mkdir()
    shutil.copy(cfg.cache_path, tmp_path / "strict" / "t.safetensors")
    with pytest.raises(CacheError, match="older format.*--strict_cache false"):
        ensure_cache(replace(cfg, strict_cache=True, cache_path=str(tmp_path / "strict" / "t.safetensors")), TEXTS, TEXTS)
