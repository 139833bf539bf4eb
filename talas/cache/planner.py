"""The cache build's bookkeeping: the manifest, the pre-allocated partial file, progress records, what is left.

A build writes into ``<path>.partial``, allocated at full size up front. As each chunk completes,
its CRC-32 is recorded in ``<path>.progress.rank<r>.json``; a killed build resumes at the chunks
no record names, and ranks of a distributed run record disjoint chunks of the same file. A finished
file whose chunks fail their checksums is turned back into a partial with its good chunks marked
done, so only the bad chunks are embedded again. This module decides which chunks are left
(``plan``); ``talas.cache.build`` embeds them.
"""

from __future__ import annotations

import errno
import glob
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict

from talas.cache.format import (
    FORMAT,
    PENDING,
    CacheKey,
    TeacherCache,
    core_manifest,
    crc_hex,
    header_bytes,
    key_of,
    open_cache,
    open_cache_unchecked,
    read_header_unchecked,
    texts_region,
)
from talas.errors import CacheError

logger = logging.getLogger(__name__)


def write_json_atomic(path: str, value: object) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(value, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def disk_error(exc: OSError, path: str, needed: int) -> CacheError:
    if exc.errno == errno.ENOSPC:
        size = f" (it needs {needed / 2**20:.1f} MiB)" if needed else ""
        return CacheError(
            f"Out of disk space writing the teacher cache {path}{size}. Free space or pass --cache_path on "
            "another disk; finished chunks are kept and the build resumes where it stopped."
        )
    return CacheError(f"Cannot write the teacher cache {path}: {exc.strerror or exc}. Pass a --cache_path in a folder you can write.")


def prepare_folder(path: str) -> None:
    """Create the cache's folder, or say in one line why a cache cannot be written at ``path``."""
    if os.path.isdir(path):
        raise CacheError(
            f"--cache_path {path!r} is a folder; pass a file path inside it, e.g. "
            f"{os.path.join(path, 'teacher_train.safetensors')} (caches of other data or teachers are kept beside it)."
        )
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise CacheError(
            f"--cache_path {path!r} lies under a regular file, not a folder. Pass a --cache_path in a folder."
        ) from None
    except OSError as exc:
        raise disk_error(exc, path, 0) from None
    if not os.access(folder, os.W_OK):
        raise CacheError(f"Cannot write the teacher cache folder {folder} (permission denied). Pass a --cache_path in a folder you can write.")


def new_manifest(key: CacheKey, chunk_size: int, texts: Sequence[str]) -> dict:
    offsets, raw = texts_region(texts)
    n_chunks = -(-len(texts) // chunk_size)
    return {"format": FORMAT, **key.stored(), "chunk_size": chunk_size, "texts_crc32": crc_hex(offsets.tobytes() + raw),
            "chunk_crc32": [PENDING] * n_chunks}


def allocate(partial: str, manifest: dict, texts: Sequence[str]) -> None:
    """Create the full-size file up front so a full disk fails now, not after hours of encoding."""
    offsets, raw = texts_region(texts)
    head, tensors = header_bytes(manifest, len(texts), manifest["dim"], manifest["dtype"], len(raw))
    total = len(head) + tensors["texts_utf8"]["data_offsets"][1]
    try:
        with open(partial, "wb") as handle:
            handle.truncate(total)
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(handle.fileno(), 0, total)
            handle.write(head)
            handle.seek(len(head) + tensors["text_offsets"]["data_offsets"][0])
            handle.write(offsets.tobytes())
            handle.write(raw)
    except OSError as exc:
        # A half-allocated file would later be taken for another build's claim; leave nothing.
        if os.path.exists(partial):
            os.remove(partial)
        raise disk_error(exc, partial, total) from None


def progress_files(path: str) -> list[str]:
    return glob.glob(glob.escape(path) + ".progress.rank*.json")


def completed_chunks(path: str, manifest: dict) -> dict[int, str]:
    """{chunk: crc} finished by earlier (killed) builds of this manifest, across all ranks."""
    partial = path + ".partial"
    try:
        if core_manifest(read_header_unchecked(partial)[1]) != core_manifest(manifest):
            return {}
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    done: dict[int, str] = {}
    for progress_file in progress_files(path):
        try:
            with open(progress_file, encoding="utf-8") as handle:
                record = json.load(handle)
        except (OSError, ValueError):
            continue
        if record.get("manifest") == core_manifest(manifest):
            done.update({int(c): crc for c, crc in record["done"].items()})
    return done


def own_progress(path: str, rank: int, manifest: dict) -> dict[int, str]:
    try:
        with open(f"{path}.progress.rank{rank}.json", encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return {}
    return {int(c): crc for c, crc in record["done"].items()} if record.get("manifest") == core_manifest(manifest) else {}


def record_done(path: str, rank: int, manifest: dict, done: dict[int, str]) -> None:
    write_json_atomic(f"{path}.progress.rank{rank}.json", {"manifest": core_manifest(manifest), "done": done})


def keep_one_record(path: str, manifest: dict, done: dict[int, str]) -> None:
    """Rank 0's record holds ``done``; the other ranks' records go."""
    record_done(path, 0, manifest, done)
    for other in progress_files(path):
        if not other.endswith(".rank0.json"):
            os.remove(other)


def plan(path: str, texts: Sequence[str], key: CacheKey, chunk_size: int) -> list[int] | None:
    """Rank 0, under the lock: None when a valid ``path`` exists, else the chunks still to embed."""
    manifest, demoted = new_manifest(key, chunk_size, texts), False
    if os.path.exists(path):
        final = open_cache(path)
        if key_of(final.manifest) != asdict(key):
            raise CacheError(f"{path} holds a teacher cache for another key; it is kept. Build this one at another path.")
        bad = final.verify()
        if bad == [-1]:  # damaged texts: ours are the right ones (the key's hash matched), so write them back
            rewrite_texts(path, texts)
            bad = final.verify()
        if not bad:
            return None
        # Demote: the good chunks count as done, the file becomes the partial, the bad chunks are redone.
        manifest = {**final.manifest, "chunk_crc32": [PENDING] * final.n_chunks}
        good = {c: crc for c, crc in enumerate(final.manifest["chunk_crc32"]) if c not in bad}
        for stale in progress_files(path):
            os.remove(stale)
        record_done(path, 0, manifest, good)
        os.replace(path, path + ".partial")
        demoted = True
    done = completed_chunks(path, manifest)
    if not same_partial(path, manifest):
        for stale in progress_files(path):
            os.remove(stale)
        allocate(path + ".partial", manifest, texts)
    elif done and not demoted:
        # Chunks of a partial can be damaged while no build runs; trust only those that still verify.
        on_disk = open_partial(path, manifest).chunk_crcs(sorted(done))
        done = {c: crc for c, crc in done.items() if on_disk[c] == crc}
    if done:  # one record from here on, whatever the number of ranks that wrote the old ones
        keep_one_record(path, manifest, done)
    n_chunks = len(manifest["chunk_crc32"])
    if done:
        logger.info(f"Resuming the teacher cache build: {len(done)}/{n_chunks} chunks already done.")
    return [c for c in range(n_chunks) if c not in done]


def same_partial(path: str, manifest: dict) -> bool:
    try:
        return core_manifest(read_header_unchecked(path + ".partial")[1]) == core_manifest(manifest)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def open_partial(path: str, manifest: dict) -> TeacherCache:
    cache = open_cache_unchecked(path + ".partial")
    cache.manifest = manifest
    return cache


def rewrite_texts(path: str, texts: Sequence[str]) -> None:
    tensors, _, start = read_header_unchecked(path)
    offsets, raw = texts_region(texts)
    with open(path, "r+b") as handle:
        handle.seek(start + tensors["text_offsets"]["data_offsets"][0])
        handle.write(offsets.tobytes() + raw)
