"""Where teacher caches live: several coexist in one folder under names derived from their key.

    talas cache --list                                   # every cache beside --cache_path
    talas cache --verify                                 # full checksum check of each
    talas cache --prune --keep_newest 1 [--dry_run]      # or --older_than DAYS, or --name FILE

``--cache_path cache/teacher_train.safetensors`` names the store: the folder ``cache/`` and the
stem ``teacher_train``. The first cache built there takes that exact name (so the seed's path
still holds a cache and tools that open it keep working); a cache with another key goes beside it
as ``teacher_train.<key>.safetensors`` and never over it. Lookup tries the exact path first, then
the keyed siblings, newest first. Choosing the name happens under a short store lock
(``teacher_train.store.lock``) that also claims it, by allocating the partial file, so two runs
with different keys never pick the same name.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import time
from collections.abc import Sequence
from dataclasses import asdict

from filelock import FileLock, Timeout

from talas.cache.format import FORMAT, CacheKey, describe_bad, key_of, open_cache, read_header_unchecked
from talas.cache.planner import allocate, completed_chunks, new_manifest, prepare_folder, progress_files, same_partial
from talas.errors import CacheError

logger = logging.getLogger(__name__)


def split(path: str) -> tuple[str, str]:
    stem, ext = os.path.splitext(path)
    return stem, ext or ".safetensors"


def keyed_path(path: str, key: CacheKey) -> str:
    stem, ext = split(path)
    return f"{stem}.{key.short()}{ext}"


def store_entries(path: str) -> list[str]:
    """Every cache file of the store, finished or partial: the exact path, then keyed names, newest first."""
    stem, ext = split(path)
    pattern = re.compile(re.escape(os.path.basename(stem)) + r"(\.[0-9a-f]{12})?" + re.escape(ext) + r"(\.partial)?$")
    found = [f for f in glob.glob(glob.escape(stem) + "*") if pattern.fullmatch(os.path.basename(f))]
    return sorted(found, key=lambda f: (f.removesuffix(".partial") != path, -os.path.getmtime(f)))


def store_files(path: str) -> list[str]:
    """Finished caches of the store, in lookup order."""
    return [f for f in store_entries(path) if not f.endswith(".partial")]


def claim_target(path: str, key: CacheKey, texts: Sequence[str], chunk_size: int) -> str:
    """The file to build ``key``'s cache into; a new one is claimed by allocating its partial."""
    prepare_folder(path)
    keyed = keyed_path(path, key)
    manifest = new_manifest(key, chunk_size, texts)
    with FileLock(split(path)[0] + ".store.lock"):
        for target in (path, keyed):
            if file_format(target) == FORMAT and file_key(target) == asdict(key) or same_partial(target, manifest):
                return target  # finished (or being built) by another run meanwhile, or a killed build to resume
        free = not os.path.exists(path) and not os.path.exists(path + ".partial")
        target = path if free else keyed
        for stale in progress_files(target):
            os.remove(stale)
        allocate(target + ".partial", manifest, texts)
        return target


def file_format(path: str) -> str | None:
    try:
        return read_header_unchecked(path)[1].get("format")
    except (OSError, ValueError, KeyError, TypeError):
        return None


def file_key(path: str) -> dict | None:
    try:
        return key_of(read_header_unchecked(path)[1])
    except (OSError, ValueError, KeyError, TypeError):
        return None


# ----------------------------------------------------------------------------- talas cache --list/--prune/--verify


def describe(path: str) -> dict:
    row = {"file": path, "size": os.path.getsize(path), "created": os.path.getmtime(path)}
    try:
        _, manifest, _ = read_header_unchecked(path)
    except (OSError, ValueError, KeyError, TypeError):
        return {**row, "state": "unreadable"}
    if path.endswith(".partial"):
        done = completed_chunks(path.removesuffix(".partial"), manifest)
        state = f"partial {len(done)}/{len(manifest.get('chunk_crc32', []))}"
    else:
        state = "complete"
    return {**row, "state": state, **key_of(manifest)}


def human_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def format_listing(rows: list[dict]) -> str:
    """One line per cache: file, state, size, created, rows x dim dtype, and the rest of its key."""
    if not rows:
        return "No teacher caches."
    width = max(len(r["file"]) for r in rows)
    lines = []
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created"]))
        what = "" if r["state"] == "unreadable" else (
            f"{r['count']:>9,} x {r['dim']:<5} {r['dtype']:<8}  teacher {r['teacher']} (rev {str(r['teacher_revision'])[:14]}, "
            f"{r['pooling']}{end_token(r)}, max_length {r['max_length']}, normalize {r['normalize']}, prompt {r['prompt']!r})")
        lines.append(f"{r['file']:<{width}}  {r['state']:<13} {human_size(r['size']):>10}  {when}  {what}".rstrip())
    return "\n".join(lines)


def end_token(row: dict) -> str:
    """" end token '<|endoftext|>'" after last_token pooling (a cache built before TALAS recorded it says so); "" otherwise."""
    if row["pooling"] != "last_token":
        return ""
    return f" end token {row['end_token']!r}" if row["end_token"] else " end token not recorded"


def busy(path: str) -> bool:
    """Whether a build of this cache holds its lock right now."""
    lock = FileLock(path.removesuffix(".partial") + ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False


def select_prunable(path: str, older_than: float | None, keep_newest: int | None, name: str | None) -> list[dict]:
    rows = [describe(f) for f in store_entries(path)]
    chosen: dict[str, dict] = {}
    if name is not None:
        named = [r for r in rows if os.path.basename(r["file"]) == os.path.basename(name)]
        if not named:
            raise CacheError(f"No teacher cache named {name!r} beside {path}. `talas cache --list` shows the names.")
        chosen.update((r["file"], r) for r in named)
    if older_than is not None:
        cutoff = time.time() - older_than * 86400
        chosen.update((r["file"], r) for r in rows if r["created"] < cutoff)
    if keep_newest is not None:
        kept: dict[tuple, int] = {}
        for r in sorted((r for r in rows if r["state"] == "complete"), key=lambda r: -r["created"]):
            teacher = (r["teacher"], r["teacher_revision"])
            kept[teacher] = kept.get(teacher, 0) + 1
            if kept[teacher] > keep_newest:
                chosen[r["file"]] = r
    return list(chosen.values())


def prune(path: str, older_than: float | None, keep_newest: int | None, name: str | None, dry_run: bool) -> int:
    """Delete the selected caches (each one named in the log); returns how many were (or would be) deleted."""
    if older_than is None and keep_newest is None and name is None:
        raise CacheError("--prune needs a selection: --older_than DAYS, --keep_newest N (per teacher) or --name FILE.")
    if keep_newest is not None and keep_newest < 0 or older_than is not None and older_than < 0:
        raise CacheError("--keep_newest and --older_than must be 0 or more.")
    count = 0
    for r in select_prunable(path, older_than, keep_newest, name):
        if busy(r["file"]):
            logger.info(f"Kept {r['file']}: a build is running on it right now.")
            continue
        label = format_listing([r])
        if dry_run:
            logger.info(f"Would delete {label}")
        else:
            os.remove(r["file"])  # its .lock file stays: deleting it could split a lock a new build just took
            if r["file"].endswith(".partial"):
                for progress in progress_files(r["file"].removesuffix(".partial")):
                    os.remove(progress)
            logger.info(f"Deleted {label}")
        count += 1
    if not count:
        logger.info("Nothing to prune.")
    return count


def verify_store(path: str, name: str | None) -> list[str]:
    """Full checksum check of every finished cache of the store (or the named one); returns the failures."""
    files = [f for f in store_files(path) if name is None or os.path.basename(f) == os.path.basename(name)]
    if name is not None and not files:
        raise CacheError(f"No finished teacher cache named {name!r} beside {path}. `talas cache --list` shows the names.")
    failures = []
    for file in files:
        began = time.perf_counter()
        try:
            cache = open_cache(file)
            bad = cache.verify()
        except CacheError as exc:
            logger.warning(f"FAILED {file}: {exc}")
            failures.append(file)
            continue
        seconds = time.perf_counter() - began
        if bad:
            logger.warning(f"FAILED {file}: {describe_bad(cache.manifest, cache.count, bad)} fail their checksum.")
            failures.append(file)
        else:
            logger.info(f"ok     {file}: {cache.n_chunks} chunks, {human_size(os.path.getsize(file))} checked in {seconds:.2f} s")
    if not files:
        logger.info(f"No finished teacher caches beside {path}.")
    return failures
