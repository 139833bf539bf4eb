"""The teacher cache's file format: key, header, memory-mapped reading and per-chunk checksums.

    talas cache --verify        # checks every chunk checksum of the caches in the --cache_path folder

A cache is a standard safetensors file (readable by ``safetensors.safe_open``) holding
``embeddings`` [N, D] (F32, F16 or BF16), ``text_offsets`` [N+1] and ``texts_utf8`` (the texts
themselves), with a manifest in the header metadata: the key (teacher id and revision, pooling,
normalisation, dtype, max_length, prompt, dim, count, a hash of the ordered texts and, under
last-token pooling, the token every text ends with), the chunk size, a CRC-32 of every chunk of
rows (recorded by the builder as the chunk completes) and a CRC-32 of the texts region. Chunk
``c`` is ``build_order[c * chunk_size : (c + 1) * chunk_size]``, the rows sorted longest text
first (UTF-8 bytes, a tokenizer-free proxy for tokens), so the batches of a chunk carry little
padding and the chunks are defined by the stored texts alone (``--verify`` needs no tokenizer); a
chunk's CRC covers its rows in ascending row order. We read the vectors with ``numpy.memmap`` at
the tensor's offset, so opening costs one header read and a gather touches
only the rows it needs. CRC-32 (zlib, hardware-accelerated) rather than sha256: it verifies at
~6.6 GiB/s against sha256's ~1.9 GiB/s here, and it guards against corruption, not an attacker.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import random
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import MISSING, asdict, dataclass, fields

import numpy as np
import torch

from talas.errors import CacheError

FORMAT = "talas-teacher-cache/2"
DTYPES = {"float32": ("F32", np.float32, 4), "float16": ("F16", np.float16, 2), "bfloat16": ("BF16", np.uint16, 2)}
PENDING = "--------"  # a chunk checksum not yet known: same width as a CRC, so the header keeps its length
# Every open checks all chunk checksums of a cache up to this size (a 1M x 1024 fp16 cache, 1.9 GiB,
# takes about 0.3 s warm; see BENCHMARKS.md); larger caches check a random sample of this size.
OPEN_CHECK_BYTES = 4 << 30
READ_BLOCK = 16 << 20


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
    # Last-token pooling: the token every text ends with as the Encoder feeds it (the tokenizer's own end
    # token, or the EOS talas appends); "" for mean/cls. Older manifests lack it and read as "" (KEY_DEFAULTS).
    end_token: str = ""

    def stored(self) -> dict:
        """The key as a manifest holds it: an empty ``end_token`` is left out, as TALAS wrote it before the
        field existed, so the manifests and file names of mean/cls caches are unchanged."""
        return {name: value for name, value in asdict(self).items() if name != "end_token" or value}

    def short(self) -> str:
        """12 hex digits naming this key in a cache file name (teacher_train.<short>.safetensors)."""
        return hashlib.sha256(json.dumps(self.stored(), sort_keys=True).encode()).hexdigest()[:12]


def normalize_model_id(name: str) -> str:
    """A local folder as its real absolute path ('~', trailing '/', relative paths and links agree); a hub id as is."""
    expanded = os.path.expanduser(name)
    return os.path.realpath(expanded) if os.path.isdir(expanded) else name


# What a key field missing from a manifest means: the value of a cache built before the field existed.
KEY_DEFAULTS = {f.name: f.default for f in fields(CacheKey) if f.default is not MISSING}


def key_of(manifest: dict) -> dict:
    """A manifest's key, as ``asdict(CacheKey)`` gives it (fields it lacks read as their KEY_DEFAULTS)."""
    return {f.name: manifest.get(f.name, KEY_DEFAULTS.get(f.name)) for f in fields(CacheKey)}


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


def crc_hex(buffer) -> str:
    return f"{zlib.crc32(buffer) & 0xFFFFFFFF:08x}"


def build_order(byte_lengths: np.ndarray) -> np.ndarray:
    """Rows longest text first (stable, so ties keep row order); chunk c is order[c * size : (c + 1) * size]."""
    return np.argsort(-np.asarray(byte_lengths, dtype=np.int64), kind="stable")


def chunk_members(order: np.ndarray, chunk: int, chunk_size: int) -> np.ndarray:
    """The rows of one chunk, ascending."""
    return np.sort(order[chunk * chunk_size : (chunk + 1) * chunk_size])


def core_manifest(manifest: dict) -> dict:
    """The manifest without the chunk checksums: what a partial file and its finished file share."""
    return {k: v for k, v in manifest.items() if k != "chunk_crc32"}


class TeacherCache:
    """Read side of a cache: memory-mapped vectors, the manifest, and (lazily) the texts."""

    def __init__(self, path: str, manifest: dict, vectors: np.ndarray, dtype: str, texts_loader: Callable[[], list[str]],
                 data_start: int = 0, tensors: dict | None = None):
        self.path = path
        self.manifest = manifest
        self.vectors = vectors
        self.dtype = dtype
        self._texts_loader = texts_loader
        self._texts: list[str] | None = None
        self.data_start = data_start
        self.tensors = tensors or {}

    @property
    def count(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def n_chunks(self) -> int:
        return len(self.manifest.get("chunk_crc32", ()))

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
        # A teacher never emits an all-zero vector: such rows are overwritten or never-written storage.
        bad = ~torch.isfinite(out).all(dim=1) | (out == 0).all(dim=1)
        if bad.any():
            row = int(rows[int(bad.nonzero()[0, 0])])
            kind = "NaN or infinite values" if not torch.isfinite(out).all() else "an all-zero row"
            raise CacheError(
                f"Teacher cache {self.path} holds {kind} (row {row}); the file is corrupted. "
                "Run `talas cache --verify` to name the bad chunks, then rerun to rebuild them."
            )
        return out

    def order(self) -> np.ndarray:
        offs = self.tensors["text_offsets"]
        offsets = np.memmap(self.path, dtype=np.int64, mode="r", offset=self.data_start + offs["data_offsets"][0],
                            shape=tuple(offs["shape"]))
        return build_order(np.diff(offsets))

    def chunk_crcs(self, chunks: Sequence[int] | None = None) -> dict[int, str]:
        """CRC-32 of chunks as stored on disk: all in one sequential pass, or the named ones row by row."""
        size, order = int(self.manifest["chunk_size"]), self.order()
        emb = self.data_start + self.tensors["embeddings"]["data_offsets"][0]
        if chunks is not None:
            vectors = np.memmap(self.path, dtype=self.vectors.dtype, mode="r", offset=emb, shape=self.vectors.shape)
            return {c: crc_hex(np.ascontiguousarray(vectors[chunk_members(order, c, size)])) for c in chunks}
        chunk_of = np.empty(self.count, dtype=np.int64)
        chunk_of[order] = np.arange(self.count) // size
        crcs = [0] * self.n_chunks
        row_bytes = self.dim * DTYPES[self.dtype][2]
        block_rows = max(1, READ_BLOCK // row_bytes)
        buffer = bytearray(block_rows * row_bytes)
        # Plain reads, not the memmap: the file streams through one buffer and RSS does not grow.
        with open(self.path, "rb", buffering=0) as handle:
            handle.seek(emb)
            for first in range(0, self.count, block_rows):
                rows = min(block_rows, self.count - first)
                got = handle.readinto(memoryview(buffer)[: rows * row_bytes])
                while got < rows * row_bytes:  # readinto may return less; a short file leaves zeros (and a bad CRC)
                    more = handle.readinto(memoryview(buffer)[got : rows * row_bytes])
                    if not more:
                        buffer[got : rows * row_bytes] = bytes(rows * row_bytes - got)
                        break
                    got += more
                data = np.frombuffer(buffer, dtype=np.uint8, count=rows * row_bytes).reshape(rows, row_bytes)
                ids = chunk_of[first : first + rows]
                perm = np.argsort(ids, kind="stable")  # stable: rows of a chunk stay ascending
                grouped, ids = data[perm], ids[perm]
                cuts = [0, *(np.flatnonzero(np.diff(ids)) + 1).tolist(), rows]
                for begin, end in zip(cuts[:-1], cuts[1:], strict=True):
                    crcs[ids[begin]] = zlib.crc32(grouped[begin:end], crcs[ids[begin]])
        return {c: f"{crc & 0xFFFFFFFF:08x}" for c, crc in enumerate(crcs)}

    def texts_crc(self) -> str:
        begin = self.data_start + self.tensors["text_offsets"]["data_offsets"][0]
        end = self.data_start + self.tensors["texts_utf8"]["data_offsets"][1]
        return crc_region(self.path, begin, end - begin)

    def verify(self, chunks: Sequence[int] | None = None) -> list[int]:
        """Chunks whose rows no longer match the checksum recorded when they were built ([-1]: the texts)."""
        recorded = self.manifest["chunk_crc32"]
        if self.texts_crc() != self.manifest.get("texts_crc32"):
            return [-1]  # the chunks are defined by the texts' lengths: with the texts damaged they cannot be checked
        return [c for c, crc in self.chunk_crcs(chunks).items() if crc != recorded[c]]

    def open_check(self, budget: int = OPEN_CHECK_BYTES) -> tuple[list[int], int]:
        """The check every open runs: (bad chunks, chunks checked). All chunks while they fit the budget."""
        per_chunk = max(1, int(self.manifest["chunk_size"]) * self.dim * DTYPES[self.dtype][2])
        if self.n_chunks * per_chunk <= budget:
            return self.verify(), self.n_chunks
        # A fresh sample each run, so repeated runs cover the whole file; the last chunk is the one a
        # killed writer or a truncating copy damages first.
        others = random.sample(range(self.n_chunks - 1), min(self.n_chunks - 1, max(1, budget // per_chunk)))
        sample = [*sorted(others), self.n_chunks - 1]
        return self.verify(sample), len(sample)


def describe_bad(manifest: dict, count: int, bad: Sequence[int]) -> str:
    """'chunks [3, 7] (8,192 rows)' or 'the stored texts' for a message."""
    if -1 in bad:
        return "the stored texts"
    size = int(manifest["chunk_size"])
    rows = sum(min(size, count - c * size) for c in bad)
    return f"chunks {list(bad)} ({rows:,} rows)"


def crc_region(path: str, offset: int, length: int) -> str:
    crc = 0
    with open(path, "rb") as handle:
        handle.seek(offset)
        while length > 0:
            piece = handle.read(min(length, READ_BLOCK))
            if not piece:
                break  # a short file: the CRC then differs from the recorded one
            crc = zlib.crc32(piece, crc)
            length -= len(piece)
    return f"{crc & 0xFFFFFFFF:08x}"


# ----------------------------------------------------------------------------- header


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


def read_header_unchecked(path: str) -> tuple[dict, dict, int]:
    """(tensors, manifest, data_start) as the header states them; read_header also checks them."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        if length > min(os.path.getsize(path) - 8, 100 << 20):
            raise ValueError("header length out of range")
        header = json.loads(handle.read(length))
    manifest = json.loads(header.pop("__metadata__")["talas"])
    return header, manifest, 8 + length


def read_header(path: str) -> tuple[dict, dict, int]:
    """(tensors, manifest, data_start) of a cache file; CacheError for anything malformed."""
    fix = "Delete it and rerun to rebuild it."
    try:
        size = os.path.getsize(path)
        tensors, manifest, start = read_header_unchecked(path)
        end = max(t["data_offsets"][1] for t in tensors.values())
    except (OSError, ValueError, KeyError, TypeError, struct.error) as exc:
        raise CacheError(f"Teacher cache {path} is not a readable TALAS cache ({exc}). {fix}") from None
    if manifest.get("format") != FORMAT:
        raise CacheError(f"Teacher cache {path} has format {manifest.get('format')!r}, expected {FORMAT!r}. {fix}")
    if size != start + end:
        raise CacheError(f"Teacher cache {path} is truncated or corrupted: {size} bytes on disk, {start + end} expected. {fix}")
    return tensors, manifest, start


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

    return TeacherCache(path, manifest, vectors, dtype, load_texts, start, tensors)


def open_cache_unchecked(path: str) -> TeacherCache:
    """A cache file as its header states it, unfinished (a partial build) or not; only the vectors are mapped."""
    tensors, manifest, start = read_header_unchecked(path)
    emb = tensors["embeddings"]
    vectors = np.memmap(path, dtype=DTYPES[manifest["dtype"]][1], mode="r", offset=start, shape=tuple(emb["shape"]))
    return TeacherCache(path, manifest, vectors, manifest["dtype"], lambda: [], start, tensors)


def to_storage(vectors: torch.Tensor, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":
        return vectors.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    return vectors.to(torch.float16 if dtype == "float16" else torch.float32).numpy()


def texts_region(texts: Sequence[str]) -> tuple[np.ndarray, bytes]:
    """(text_offsets, texts_utf8) as stored in the file."""
    encoded = [t.encode("utf-8") for t in texts]
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return offsets, b"".join(encoded)
