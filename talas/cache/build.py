"""Building a teacher cache: embed the chunks left to do, verify, and rename the partial file into place.

A build holds a lock (``<path>.lock``, filelock: a second process building the same cache waits,
then reuses the finished file). Rank 0 decides what is left (``talas.cache.planner.plan``); every
rank embeds its share of those chunks into the pre-allocated ``<path>.partial``, in batches sorted
by token count (chunks group texts of similar length: ``talas.cache.format.build_order``). At the
end rank 0 writes the checksums into the header, verifies every chunk against them, and only then
renames the file to ``<path>``.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from filelock import FileLock, Timeout

from talas.cache.format import (
    DTYPES,
    FORMAT,
    PENDING,
    CacheKey,
    TeacherCache,
    build_order,
    chunk_members,
    crc_hex,
    header_bytes,
    open_cache,
    read_header_unchecked,
    texts_region,
    to_storage,
)
from talas.cache.planner import (
    allocate,
    completed_chunks,
    disk_error,
    keep_one_record,
    own_progress,
    plan,
    prepare_folder,
    progress_files,
    record_done,
)
from talas.errors import CacheError
from talas.faults import fault

logger = logging.getLogger(__name__)
# What each process of a distributed build did: shown from every rank, where other messages come from rank 0 only.
rank_logger = logging.getLogger("talas.ranks")


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
        keep_one_record(path, manifest, {c: crc for c, crc in done.items() if c not in bad})
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
            logger.info(f"Another process is building the teacher cache {path}; waiting for it to finish (lock {path}.lock).")
            lock.acquire()
            waited = True
    try:
        todo = from_rank0(plan(path, texts, key, chunk_size) if rank == 0 else None)
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
            # Every rank reports its own share.
            rank_logger.info(f"rank {rank}/{world}: embedded chunks {mine} ({embedded:,} texts, {batches} teacher batches)")
            barrier()
            if rank == 0:
                finalize(path, texts, {**manifest, "chunk_crc32": [PENDING] * len(manifest["chunk_crc32"])})
        elif waited:
            logger.info(f"The other process finished the teacher cache {path}; reusing it.")
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
