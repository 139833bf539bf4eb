"""The teacher cache: embed every unique training text once, store one memory-mapped [N, D] array.

    talas cache --train_data_path data/train/distill_texts_clean.csv --teacher_model_name <teacher>

File format: a standard safetensors file (readable by ``safetensors.safe_open``) holding
``embeddings`` [N, D] (F32, F16 or BF16), ``text_offsets`` [N+1] and ``texts_utf8`` (the texts
themselves), with a manifest in the header metadata that keys the cache: teacher id and revision,
pooling, normalisation, dtype, max_length, prompt, dim, count and a hash of the ordered texts.
We read it with ``numpy.memmap`` at the tensor's offset, so opening costs one header read and a
gather touches only the rows it needs.

Building writes into a pre-allocated ``<path>.partial`` file chunk by chunk (length-sorted, so
batches carry little padding) and records finished chunks in ``<path>.progress.rank<r>.json``;
a killed build resumes at the first unfinished chunk, and ranks of a distributed run build
disjoint chunks of the same file. Only a complete file is renamed to ``<path>``.
"""

from __future__ import annotations

import errno
import gc
import glob
import hashlib
import json
import os
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from talas.errors import CacheError

FORMAT = "talas-teacher-cache/1"
DTYPES = {"float32": ("F32", np.float32, 4), "float16": ("F16", np.float16, 2), "bfloat16": ("BF16", np.uint16, 2)}


@dataclass(frozen=True)
class CacheKey:
    """Everything that determines the cached vectors; a cache is valid only for an equal key."""

    teacher: str
    teacher_revision: str
    pooling: str
    normalize: bool
    dtype: str
    max_length: int
    prompt: str
    dim: int
    count: int
    texts_sha256: str


def texts_fingerprint(texts: Sequence[str]) -> str:
    """sha256 over the ordered texts, length-prefixed so that ["ab", "c"] != ["a", "bc"]."""
    digest = hashlib.sha256()
    for text in texts:
        raw = text.encode("utf-8")
        digest.update(struct.pack("<Q", len(raw)))
        digest.update(raw)
    return digest.hexdigest()


def teacher_revision(name_or_path: str, config: object | None = None) -> str:
    """The hub commit when known; for a local folder, a hash of its configs, tokenizer and weights.

    Weight files are fingerprinted by size plus their first and last MiB, which changes whenever the
    weights are re-saved after training, without reading gigabytes at every start.
    """
    if not os.path.isdir(name_or_path):
        return str(getattr(config, "_commit_hash", None) or "unknown")
    digest = hashlib.sha256()
    for path in sorted(glob.glob(os.path.join(name_or_path, "*"))):
        name = os.path.basename(path)
        if not os.path.isfile(path) or name.startswith(".") or name.endswith((".md", ".txt")) and name != "vocab.txt":
            continue
        size = os.path.getsize(path)
        digest.update(f"{name}:{size}".encode())
        with open(path, "rb") as handle:
            if name.endswith((".safetensors", ".bin", ".pt", ".gguf")) and size > 2 << 20:
                digest.update(handle.read(1 << 20))
                handle.seek(size - (1 << 20))
                digest.update(handle.read(1 << 20))
            else:
                digest.update(handle.read())
    return "local-" + digest.hexdigest()[:16]


def key_differences(found: dict, expected: CacheKey) -> list[str]:
    """Human-readable list of the key fields that differ ('field: cached → now')."""
    out = []
    for name, want in asdict(expected).items():
        have = found.get(name)
        if have != want:
            if name == "texts_sha256":
                out.append("training texts changed (different rows or order)")
            else:
                out.append(f"{name}: {have!r} → {want!r}")
    return out


class TeacherCache:
    """Read side of a cache: memory-mapped vectors, the manifest, and (lazily) the texts."""

    def __init__(self, path: str, manifest: dict, vectors: np.ndarray, dtype: str, texts_loader: Callable[[], list[str]]):
        self.path = path
        self.manifest = manifest
        self.vectors = vectors
        self.dtype = dtype
        self._texts_loader = texts_loader
        self._texts: list[str] | None = None

    @property
    def count(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def texts(self) -> list[str]:
        if self._texts is None:
            self._texts = self._texts_loader()
        return self._texts

    def rows_for(self, texts: Sequence[str]) -> np.ndarray:
        """Cache row of each text (-1 where absent). Identity when the ordered texts are the cache's."""
        if len(texts) == self.count and texts_fingerprint(texts) == self.manifest.get("texts_sha256"):
            return np.arange(self.count, dtype=np.int64)
        index = {t: i for i, t in enumerate(self.texts())}
        return np.fromiter((index.get(t, -1) for t in texts), dtype=np.int64, count=len(texts))

    def gather(self, rows: np.ndarray | torch.Tensor) -> torch.Tensor:
        """float32 [len(rows), D] for the given rows; reads only those rows from disk."""
        rows = np.asarray(rows, dtype=np.int64)
        # numpy fancy indexing on a memmap is fastest on sorted indices; undo the sort afterwards.
        order = np.argsort(rows, kind="stable")
        block = np.empty((len(rows), self.dim), dtype=self.vectors.dtype)
        block[order] = self.vectors[rows[order]]
        out = torch.from_numpy(block)
        out = out.view(torch.bfloat16).float() if self.dtype == "bfloat16" else out.float()
        if not torch.isfinite(out).all():
            raise CacheError(
                f"Teacher cache {self.path} holds NaN or infinite values; the file is corrupted. "
                "Delete it and rerun to rebuild it."
            )
        return out


# ----------------------------------------------------------------------------- on-disk format


def header_bytes(manifest: dict, count: int, dim: int, dtype: str, text_bytes: int) -> tuple[bytes, dict]:
    code, _, width = DTYPES[dtype]
    emb = count * dim * width
    offsets = (count + 1) * 8
    tensors = {
        "embeddings": {"dtype": code, "shape": [count, dim], "data_offsets": [0, emb]},
        "text_offsets": {"dtype": "I64", "shape": [count + 1], "data_offsets": [emb, emb + offsets]},
        "texts_utf8": {"dtype": "U8", "shape": [text_bytes], "data_offsets": [emb + offsets, emb + offsets + text_bytes]},
    }
    header = json.dumps({**tensors, "__metadata__": {"talas": json.dumps(manifest)}}).encode()
    header += b" " * (-len(header) % 8)  # safetensors aligns the data section to 8 bytes
    return struct.pack("<Q", len(header)) + header, tensors


def read_header(path: str) -> tuple[dict, dict, int]:
    """(tensors, manifest, data_start) of a cache file; CacheError for anything malformed."""
    fix = "Delete it and rerun to rebuild it."
    try:
        size = os.path.getsize(path)
        tensors, manifest, start = read_header_unchecked(path)
        length = start - 8
        end = max(t["data_offsets"][1] for t in tensors.values())
    except (OSError, ValueError, KeyError, TypeError, struct.error) as exc:
        raise CacheError(f"Teacher cache {path} is not a readable TALAS cache ({exc}). {fix}") from None
    if manifest.get("format") != FORMAT:
        raise CacheError(f"Teacher cache {path} has format {manifest.get('format')!r}, expected {FORMAT!r}. {fix}")
    if size != 8 + length + end:
        raise CacheError(f"Teacher cache {path} is truncated or corrupted: {size} bytes on disk, {8 + length + end} expected. {fix}")
    return tensors, manifest, 8 + length


def open_cache(path: str) -> TeacherCache:
    tensors, manifest, start = read_header(path)
    dtype = manifest["dtype"]
    emb = tensors["embeddings"]
    vectors = np.memmap(path, dtype=DTYPES[dtype][1], mode="r", offset=start + emb["data_offsets"][0], shape=tuple(emb["shape"]))

    def load_texts() -> list[str]:
        offs = tensors["text_offsets"]
        offsets = np.memmap(path, dtype=np.int64, mode="r", offset=start + offs["data_offsets"][0], shape=tuple(offs["shape"]))
        with open(path, "rb") as handle:
            handle.seek(start + tensors["texts_utf8"]["data_offsets"][0])
            raw = handle.read(int(offsets[-1]))
        return [raw[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(len(offsets) - 1)]

    return TeacherCache(path, manifest, vectors, dtype, load_texts)


# ----------------------------------------------------------------------------- building


def dist_info() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def barrier() -> None:
    if dist_info()[1] > 1:
        torch.distributed.barrier()


def write_json_atomic(path: str, value: object) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(value, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def disk_error(exc: OSError, path: str, needed: int) -> CacheError:
    if exc.errno == errno.ENOSPC:
        return CacheError(
            f"Out of disk space writing the teacher cache {path} (it needs {needed / 2**20:.1f} MiB). Free space or "
            "pass --cache_path on another disk; finished chunks are kept and the build resumes where it stopped."
        )
    return CacheError(f"Cannot write the teacher cache {path}: {exc.strerror or exc}.")


def allocate(partial: str, manifest: dict, texts: Sequence[str], dim: int, dtype: str) -> None:
    """Create the full-size file up front so a full disk fails now, not after hours of encoding."""
    encoded = [t.encode("utf-8") for t in texts]
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    head, tensors = header_bytes(manifest, len(texts), dim, dtype, int(offsets[-1]))
    total = len(head) + tensors["texts_utf8"]["data_offsets"][1]
    try:
        with open(partial, "wb") as handle:
            handle.truncate(total)
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(handle.fileno(), 0, total)
            handle.write(head)
            handle.seek(len(head) + tensors["text_offsets"]["data_offsets"][0])
            handle.write(offsets.tobytes())
            handle.write(b"".join(encoded))
    except OSError as exc:
        raise disk_error(exc, partial, total) from None


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

    Resumes a matching ``<path>.partial``; the teacher is loaded only if work remains and is
    freed (with its accelerator memory) before returning.
    """
    from tqdm.auto import tqdm

    rank, world = dist_info()
    partial = path + ".partial"
    manifest = {"format": FORMAT, **asdict(key), "chunk_size": chunk_size}
    done = completed_chunks(path, manifest)
    if rank == 0 and not done:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        for stale in glob.glob(path + ".progress.rank*.json"):
            os.remove(stale)
        allocate(partial, manifest, texts, key.dim, key.dtype)
    barrier()
    n_chunks = -(-len(texts) // chunk_size)
    mine = [c for c in range(n_chunks) if c % world == rank and c not in done]
    if done and rank == 0:
        log(f"Resuming the teacher cache build: {len(done)}/{n_chunks} chunks already done.")
    if mine:
        teacher = load_teacher()
        _, np_dtype, _ = DTYPES[key.dtype]
        _, _, start = read_header_unchecked(partial)
        out = np.memmap(partial, dtype=np_dtype, mode="r+", offset=start, shape=(len(texts), key.dim))
        ids = teacher.token_ids(texts)
        order = sorted(range(len(texts)), key=lambda i: -len(ids[i]))
        my_done = sorted(done)
        bar = tqdm(total=sum(len(order[c * chunk_size : (c + 1) * chunk_size]) for c in mine), desc="Caching teacher",
                   unit="text", disable=not progress, dynamic_ncols=True)
        began = time.perf_counter()
        with torch.inference_mode():
            for chunk in mine:
                positions = order[chunk * chunk_size : (chunk + 1) * chunk_size]
                for b in range(0, len(positions), batch_size):
                    idx = positions[b : b + batch_size]
                    feats = {k: v.to(teacher.device) for k, v in teacher.pad([ids[i] for i in idx]).items()}
                    vecs = teacher(feats).float()
                    if key.normalize:
                        vecs = torch.nn.functional.normalize(vecs, dim=-1)
                    rows = np.asarray(idx)
                    sort = np.argsort(rows)
                    out[rows[sort]] = to_storage(vecs.cpu()[torch.from_numpy(sort)], key.dtype)
                    bar.update(len(idx))
                    bar.set_postfix(texts_per_s=f"{bar.n / max(time.perf_counter() - began, 1e-9):.0f}")
                try:
                    out.flush()
                except OSError as exc:
                    raise disk_error(exc, partial, 0) from None
                my_done.append(chunk)
                write_json_atomic(f"{path}.progress.rank{rank}.json", {"manifest": manifest, "done": my_done})
        bar.close()
        del out, teacher
        free_memory()
    barrier()
    if rank == 0:
        missing = set(range(n_chunks)) - completed_chunks(path, manifest)
        if missing:
            raise CacheError(f"Teacher cache build incomplete: chunks {sorted(missing)[:5]} missing. Rerun to resume.")
        os.replace(partial, path)
        for progress_file in glob.glob(path + ".progress.rank*.json"):
            os.remove(progress_file)
    barrier()
    return open_cache(path)


def read_header_unchecked(path: str) -> tuple[dict, dict, int]:
    """(tensors, manifest, data_start) as the header states them; read_header also checks them."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        if length > min(os.path.getsize(path) - 8, 100 << 20):
            raise ValueError("header length out of range")
        header = json.loads(handle.read(length))
    manifest = json.loads(header.pop("__metadata__")["talas"])
    return header, manifest, 8 + length


def completed_chunks(path: str, manifest: dict) -> set[int]:
    """Chunks finished by an earlier (killed) build with the same manifest, across all ranks."""
    if not os.path.exists(path + ".partial"):
        return set()
    try:
        if read_header_unchecked(path + ".partial")[1] != manifest:
            return set()
    except (OSError, ValueError, KeyError, struct.error):
        return set()
    done: set[int] = set()
    for progress_file in glob.glob(path + ".progress.rank*.json"):
        try:
            with open(progress_file, encoding="utf-8") as handle:
                record = json.load(handle)
        except (OSError, ValueError):
            continue
        if record.get("manifest") == manifest:
            done.update(record["done"])
    return done


def to_storage(vectors: torch.Tensor, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":
        return vectors.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    return vectors.to(torch.float16 if dtype == "float16" else torch.float32).numpy()


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def write_cache(path: str, manifest: dict, texts: Sequence[str], vectors: torch.Tensor) -> TeacherCache:
    """Write an in-memory [N, D] array as a complete cache (used to convert seed-format caches)."""
    partial = path + ".partial"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    allocate(partial, manifest, texts, vectors.shape[1], manifest["dtype"])
    _, _, start = read_header_unchecked(partial)
    out = np.memmap(partial, dtype=DTYPES[manifest["dtype"]][1], mode="r+", offset=start, shape=tuple(vectors.shape))
    out[:] = to_storage(vectors, manifest["dtype"])
    out.flush()
    del out
    os.replace(partial, path)
    return open_cache(path)
