"""`talas cache`: build the teacher cache without training, or list, verify, prune and convert stored caches.

Only the options the cache depends on are flags here (data, teacher, cache, --device, --max_length,
which bounds the teacher's tokens unless --teacher_max_length is set): see talas/cache/ensure.py's key.
"""

from __future__ import annotations

import argparse
import logging
import os

from talas.cli.options import build_parser, parse
from talas.cli.train import peek_method
from talas.errors import CacheError
from talas.methods import get_method

#: The option groups of `talas cache`, plus these single options.
CACHE_GROUPS = ("data", "teacher", "cache")
CACHE_OPTIONS = ("method", "max_length", "device")


def cache_option(f) -> bool:
    return f.metadata.get("group") in CACHE_GROUPS or f.name in CACHE_OPTIONS


def cache_parser(cls: type) -> argparse.ArgumentParser:
    parser = build_parser(cls, "talas cache", "Build the teacher cache without training; --list, --verify, --prune the "
                          "stored caches; --convert a seed .pt.", include=cache_option)
    store = parser.add_argument_group("stored caches")
    store.add_argument("--convert", metavar="PT_FILE", help="Convert this seed-format .pt cache (rows = the data's examples) and exit.")
    store.add_argument("--list", action="store_true", help="List the teacher caches beside --cache_path (key, rows, size, created) and exit.")
    store.add_argument("--verify", action="store_true", help="Check every chunk checksum of the caches beside --cache_path (or of --name) "
                       "and exit; status 2 if one fails.")
    store.add_argument("--prune", action="store_true", help="Delete the caches beside --cache_path chosen by --older_than, --keep_newest "
                       "or --name; each one is named (--dry_run: only name them).")
    store.add_argument("--older_than", type=float, metavar="DAYS", help="With --prune: caches (and partial builds) older than DAYS.")
    store.add_argument("--keep_newest", type=int, metavar="N", help="With --prune: all but the N newest finished caches of each teacher.")
    store.add_argument("--name", metavar="FILE", help="With --prune or --verify: the cache file of that name (see --list).")
    store.add_argument("--dry_run", action="store_true", help="With --prune: say what would be deleted, delete nothing.")
    return parser


def main(argv: list[str]) -> int:
    from talas.cache import cache_file
    from talas.cache import store as cache_store

    cls = get_method(peek_method(argv)).config_class
    cfg, extras = parse(cache_parser(cls), cls, argv, "talas cache")
    path = cache_file(cfg)
    if extras.get("list"):
        print(cache_store.format_listing([cache_store.describe(f) for f in cache_store.store_entries(path)]))
        return 0
    if extras.get("prune"):
        cache_store.prune(path, extras.get("older_than"), extras.get("keep_newest"), extras.get("name"), extras.get("dry_run", False))
        return 0
    if extras.get("verify"):
        failed = cache_store.verify_store(path, extras.get("name"))
        if failed:
            raise CacheError(f"{len(failed)} teacher cache(s) failed the check: {', '.join(failed)}. Rerun training or "
                             "`talas cache` with their data and teacher to rebuild only the bad chunks, or delete them "
                             "(`talas cache --prune --name FILE`).")
        return 0
    return build(cfg, extras.get("convert"))


def build(cfg, convert: str | None = None) -> int:
    """Build (or find) the cache ``cfg`` reads; with ``convert``, import that seed-format .pt instead."""
    from talas.cache import cache_file, ensure_cache
    from talas.cache.legacy import convert_legacy
    from talas.data.examples import load_from_config

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Under torchrun/accelerate launch: one process group, so ranks split the chunks as in training.
        from accelerate import PartialState

        PartialState(cpu=cfg.device == "cpu")
    data = load_from_config(cfg)
    if convert:
        out = cache_file(cfg) if os.path.abspath(cache_file(cfg)) != os.path.abspath(convert) else convert + ".safetensors"
        cache = convert_legacy(convert, out, data.anchors)
        print(f"Converted {cache.count} seed-format embeddings (dim {cache.dim}) to {out}")
        return 0
    main_process = int(os.environ.get("RANK", "0")) == 0
    if not main_process:  # one report of the build, from rank 0
        logging.getLogger("talas").setLevel(logging.WARNING)
    cache, _ = ensure_cache(cfg, data.unique_texts(), data.anchors)
    if main_process:
        print(f"Teacher cache ready: {cache.path} ({cache.count} x {cache.dim}, {cache.dtype})")
    return 0
