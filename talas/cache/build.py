"""The teacher cache: embed every unique training text once, store one memory-mapped [N, D] array.

    talas cache --train_data_path data/train/distill_texts_clean.csv --teacher_model_name <teacher>

The file format and the read side live in ``talas.cache.format`` (re-exported here); this module
builds. A build holds a lock (``<path>.lock``, filelock: a second process building the same cache
waits, then reuses the finished file) and writes into a pre-allocated ``<path>.partial`` chunk by
chunk: chunks group texts of similar length (``cache_format.build_order``) and are embedded in
batches sorted by token count. As each chunk completes, its CRC-32 is recorded in ``<path>.progress.rank<r>.json``; a
killed build resumes at the unfinished chunks, and ranks of a distributed run build disjoint chunks
of the same file. At the end the checksums go into the header, every chunk is verified against
them, and only then is the file renamed to ``<path>``. A finished file whose chunks fail their
checksums is turned back into a partial with its good chunks marked done, so only the bad chunks
are embedded again.
"""

from __future__ import annotations

import errno
import gc
import glob
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict

import numpy as np
import torch
from filelock import FileLock, Timeout

from talas.cache.format import (  # noqa: F401  (re-exported: the read side is imported from here)
    DTYPES,
    FORMAT,
    PENDING,
    CacheKey,
    TeacherCache,
    build_order,
    chunk_members,
    core_manifest,
    crc_hex,
    header_bytes,
    key_of,
    open_cache,
    read_header,
    read_header_unchecked,
    teacher_revision,
    texts_fingerprint,
    texts_region,
    to_storage,
)
from talas.errors import CacheError
from talas.faults import fault

KEY_FIELDS = tuple(CacheKey.__dataclass_fields__)


def dist_info() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def barrier() -> None:
    if dist_info()[1] > 1:
        torch.distributed.barrier()


def from_rank0(value):
    """Rank 0's ``value`` on every rank (rank 0 alone reads the shared files and decides)."""
    if dist_info()[1] == 1:
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


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


def plan(path: str, texts: Sequence[str], key: CacheKey, chunk_size: int, log: Callable[[str], None]) -> list[int] | None:
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
        record_done(path, 0, manifest, done)
        for other in progress_files(path):
            if not other.endswith(".rank0.json"):
                os.remove(other)
    n_chunks = len(manifest["chunk_crc32"])
    if done:
        log(f"Resuming the teacher cache build: {len(done)}/{n_chunks} chunks already done.")
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


def open_cache_unchecked(partial: str) -> TeacherCache:
    tensors, manifest, start = read_header_unchecked(partial)
    emb = tensors["embeddings"]
    vectors = np.memmap(partial, dtype=DTYPES[manifest["dtype"]][1], mode="r", offset=start, shape=tuple(emb["shape"]))
    return TeacherCache(partial, manifest, vectors, manifest["dtype"], lambda: [], start, tensors)


def rewrite_texts(path: str, texts: Sequence[str]) -> None:
    tensors, _, start = read_header_unchecked(path)
    offsets, raw = texts_region(texts)
    with open(path, "r+b") as handle:
        handle.seek(start + tensors["text_offsets"]["data_offsets"][0])
        handle.write(offsets.tobytes() + raw)


def embed_chunks(path: str, texts: Sequence[str], key: CacheKey, manifest: dict, mine: list[int], teacher, batch_size: int,
                 progress: bool) -> tuple[int, int]:
    """Embed ``mine`` into the partial file; returns (texts, teacher batches) for the log."""
    from tqdm.auto import tqdm

    rank = dist_info()[0]
    partial = path + ".partial"
    chunk_size = manifest["chunk_size"]
    _, _, start = read_header_unchecked(partial)
    out = np.memmap(partial, dtype=DTYPES[key.dtype][1], mode="r+", offset=start, shape=(len(texts), key.dim))
    done = own_progress(path, rank, manifest)
    order = build_order(np.diff(texts_region(texts)[0]))
    members = {c: chunk_members(order, c, chunk_size) for c in mine}
    total = sum(len(rows) for rows in members.values())
    bar = tqdm(total=total, desc="Caching teacher", unit="text", disable=not progress, dynamic_ncols=True)
    began, batches = time.perf_counter(), 0
    with torch.inference_mode():
        for chunk in mine:
            rows = members[chunk]
            ids = teacher.token_ids([texts[i] for i in rows])
            # Longest first by tokens within the chunk: batches of similar length carry little padding.
            by_length = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
            block = np.empty((len(rows), key.dim), dtype=DTYPES[key.dtype][1])
            for b in range(0, len(by_length), batch_size):
                idx = by_length[b : b + batch_size]
                feats = {k: v.to(teacher.device) for k, v in teacher.pad([ids[i] for i in idx]).items()}
                vecs = teacher(feats).float()
                if key.normalize:
                    vecs = torch.nn.functional.normalize(vecs, dim=-1)
                block[idx] = to_storage(vecs.cpu(), key.dtype)
                batches += 1
                bar.update(len(idx))
                bar.set_postfix(texts_per_s=f"{bar.n / max(time.perf_counter() - began, 1e-9):.0f}")
            half = len(rows) // 2
            try:
                out[rows[:half]] = block[:half]
                out.flush()
                fault("cache_chunk_write", chunk)  # a kill here leaves a half-written, unrecorded chunk
                out[rows[half:]] = block[half:]
                out.flush()
            except OSError as exc:
                raise disk_error(exc, partial, 0) from None
            done[chunk] = crc_hex(block)  # rows ascending, as verify reads them
            record_done(path, rank, manifest, done)
            fault("cache_chunk_done", chunk)
    bar.close()
    del out
    return total, batches


def finalize(path: str, texts: Sequence[str], manifest: dict) -> None:
    """Rank 0: write the checksums into the header, verify every chunk against them, rename."""
    partial = path + ".partial"
    done = completed_chunks(path, manifest)
    n_chunks = len(manifest["chunk_crc32"])
    missing = sorted(set(range(n_chunks)) - set(done))
    if missing:
        raise CacheError(f"Teacher cache build incomplete: chunks {missing[:5]} were not written (a rank failed?). Rerun to resume.")
    final = {**manifest, "chunk_crc32": [done[c] for c in range(n_chunks)]}
    offsets, raw = texts_region(texts)
    head, _ = header_bytes(final, len(texts), manifest["dim"], manifest["dtype"], len(raw))
    try:
        with open(partial, "r+b") as handle:
            handle.write(head)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise disk_error(exc, partial, 0) from None
    bad = open_cache(partial).verify()
    if bad:
        record_done(path, 0, manifest, {c: crc for c, crc in done.items() if c not in bad})
        for other in progress_files(path):
            if not other.endswith(".rank0.json"):
                os.remove(other)
        raise CacheError(f"Teacher cache {partial}: chunks {bad} changed on disk after they were written (a failing disk?). "
                         "Rerun to embed them again.")
    fault("cache_finalize")
    os.replace(partial, path)
    for progress_file in progress_files(path):
        os.remove(progress_file)


def build_cache(
    path: str,
    texts: Sequence[str],
    key: CacheKey,
    load_teacher: Callable[[], object],
    batch_size: int = 64,
    chunk_size: int = 4096,
    log: Callable[[str], None] = print,
    progress: bool = True,
) -> TeacherCache:
    """Embed ``texts`` with the teacher from ``load_teacher()`` and write the cache at ``path``.

    Resumes a matching ``<path>.partial`` and repairs a finished file whose chunks fail their
    checksums; the teacher is loaded only if work remains and is freed before returning.
    """
    rank, world = dist_info()
    prepare_folder(path)
    lock, waited = FileLock(path + ".lock"), False
    if rank == 0:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            log(f"Another process is building the teacher cache {path}; waiting for it to finish (lock {path}.lock).")
            lock.acquire()
            waited = True
    try:
        todo = from_rank0(plan(path, texts, key, chunk_size, log) if rank == 0 else None)
        if todo is not None:
            manifest = from_rank0(read_header_unchecked(path + ".partial")[1] if rank == 0 else None)
            barrier()
            mine = todo[rank::world]
            embedded, batches = 0, 0
            if mine:
                teacher = load_teacher()
                embedded, batches = embed_chunks(path, texts, key, manifest, mine, teacher, batch_size, progress)
                del teacher
                free_memory()
            # Every rank reports its own share (training logs on rank 0 only, hence print on the others).
            (log if rank == 0 else print)(
                f"rank {rank}/{world}: embedded chunks {mine} ({embedded:,} texts, {batches} teacher batches)")
            barrier()
            if rank == 0:
                finalize(path, texts, {**manifest, "chunk_crc32": [PENDING] * len(manifest["chunk_crc32"])})
        elif waited:
            log(f"The other process finished the teacher cache {path}; reusing it.")
    finally:
        if rank == 0:
            lock.release()
    barrier()
    return open_cache(path)


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def write_cache(path: str, manifest: dict, texts: Sequence[str], vectors: torch.Tensor, chunk_size: int = 4096) -> TeacherCache:
    """Write an in-memory [N, D] array as a complete cache (converted seed caches, benchmarks, tests)."""
    prepare_folder(path)
    if os.path.exists(path):
        raise CacheError(f"{path} already exists and is kept. Pass a --cache_path to a new file for this cache.")
    stored = to_storage(vectors, manifest["dtype"])
    n_chunks = -(-len(texts) // chunk_size)
    offsets, raw = texts_region(texts)
    order = build_order(np.diff(offsets))
    full = {**manifest, "format": FORMAT, "dim": int(vectors.shape[1]), "chunk_size": chunk_size,
            "texts_crc32": crc_hex(offsets.tobytes() + raw),
            "chunk_crc32": [crc_hex(np.ascontiguousarray(stored[chunk_members(order, c, chunk_size)])) for c in range(n_chunks)]}
    partial = path + ".partial"
    allocate(partial, full, texts)
    _, _, start = read_header_unchecked(partial)
    out = np.memmap(partial, dtype=stored.dtype, mode="r+", offset=start, shape=stored.shape)
    out[:] = stored
    out.flush()
    del out
    os.replace(partial, path)
    return open_cache(path)
