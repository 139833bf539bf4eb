"""Command line: `talas train|cache|eval ...` (and `python main.py ...`, the seed's entry point).

    talas train --method talas --train_data_path data/train/distill_texts_clean.csv \\
        --student_model_name bert-base-uncased --teacher_model_name Qwen/Qwen3-Embedding-0.6B
    talas cache --teacher_model_name Qwen/Qwen3-Embedding-0.6B    # build the teacher cache only
    talas eval --model checkpoints/talas/model                    # score on the bundled suite
    talas compare --methods talas,stella --out results/compare    # train, measure and score methods side by side
    talas router --query_model checkpoints/talas/model --document_model <teacher> --output_dir asym

User errors print one line (`error: ...`) and exit with status 2; `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from talas.cli.console import console_logging
from talas.errors import CacheError, TalasError

COMMANDS = {
    "train": "Distil a teacher into a student (builds or reuses the teacher cache).",
    "cache": "Build the teacher cache without training; --list, --verify, --prune the stored caches; --convert a seed .pt.",
    "eval": "Score models on declared evaluation tasks (STS, pair classification, classification, retrieval).",
    "router": "Save one model that encodes queries with the student and documents with the teacher.",
    "compare": "Train several methods on the same data, models and budget; measure and score each.",
}


def peek_method(argv: list[str]) -> str:
    """The method named by --method, else by the --config file, else talas."""
    from talas.config.schema import load_config_file

    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--method")
    peek.add_argument("--config")
    known, _ = peek.parse_known_args(argv)
    if known.method:
        return known.method
    if known.config:
        return str(load_config_file(known.config).get("method", "talas"))
    return "talas"


def resolve(argv: list[str], prog: str, extra: tuple = ()):
    from talas.config.schema import build_parser, resolve_config
    from talas.methods import get_method

    method_cls = get_method(peek_method(argv))
    extras = {}
    if extra:
        parser = build_parser(method_cls.config_class, prog)
        only_extra = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
        for flags, kwargs in extra:
            parser.add_argument(*flags, **kwargs)
            only_extra.add_argument(*flags, **kwargs)
        parser.parse_known_args(argv)  # so that --help lists the extra flags with the config's
        # Only the extra flags are taken out; every config flag goes on to resolve_config.
        known, argv = only_extra.parse_known_args(argv)
        extras = vars(known)
    return resolve_config(method_cls.config_class, argv, prog), extras


def cmd_train(argv: list[str]) -> int:
    from talas.train.loop import train

    cfg, _ = resolve(argv, "talas train")
    train(cfg)
    return 0


CACHE_FLAGS = (
    (("--convert",), {"metavar": "PT_FILE", "help": "Convert this seed-format .pt cache (rows = the data's examples) and exit."}),
    (("--list",), {"action": "store_true", "help": "List the teacher caches beside --cache_path (key, rows, size, created) and exit."}),
    (("--verify",), {"action": "store_true", "help": "Check every chunk checksum of the caches beside --cache_path (or of --name) "
                                                     "and exit; status 2 if one fails."}),
    (("--prune",), {"action": "store_true", "help": "Delete the caches beside --cache_path chosen by --older_than, --keep_newest "
                                                    "or --name; each one is named (--dry_run: only name them)."}),
    (("--older_than",), {"type": float, "metavar": "DAYS", "help": "With --prune: caches (and partial builds) older than DAYS."}),
    (("--keep_newest",), {"type": int, "metavar": "N", "help": "With --prune: all but the N newest finished caches of each teacher."}),
    (("--name",), {"metavar": "FILE", "help": "With --prune or --verify: the cache file of that name (see --list)."}),
    (("--dry_run",), {"action": "store_true", "help": "With --prune: say what would be deleted, delete nothing."}),
)


def cmd_cache(argv: list[str]) -> int:
    from talas.cache import cache_file
    from talas.cache import store as cache_store

    cfg, extras = resolve(argv, "talas cache", CACHE_FLAGS)
    path = cache_file(cfg)
    if extras["list"]:
        print(cache_store.format_listing([cache_store.describe(f) for f in cache_store.store_entries(path)]))
        return 0
    if extras["prune"]:
        cache_store.prune(path, extras["older_than"], extras["keep_newest"], extras["name"], extras["dry_run"])
        return 0
    if extras["verify"]:
        failed = cache_store.verify_store(path, extras["name"])
        if failed:
            raise CacheError(f"{len(failed)} teacher cache(s) failed the check: {', '.join(failed)}. Rerun training or "
                             "`talas cache` with their data and teacher to rebuild only the bad chunks, or delete them "
                             "(`talas cache --prune --name FILE`).")
        return 0
    return build(cfg, extras)


def build(cfg, extras: dict) -> int:
    from talas.data.examples import load_from_config
    from talas.cache import cache_file, ensure_cache
    from talas.cache.legacy import convert_legacy

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Under torchrun/accelerate launch: one process group, so ranks split the chunks as in training.
        from accelerate import PartialState

        PartialState(cpu=cfg.device == "cpu")
    data = load_from_config(cfg)
    if extras.get("convert"):
        out = cache_file(cfg) if os.path.abspath(cache_file(cfg)) != os.path.abspath(extras["convert"]) else extras["convert"] + ".safetensors"
        cache = convert_legacy(extras["convert"], out, data.anchors)
        print(f"Converted {cache.count} seed-format embeddings (dim {cache.dim}) to {out}")
        return 0
    main_process = int(os.environ.get("RANK", "0")) == 0
    cache, _ = ensure_cache(cfg, data.unique_texts(), data.anchors)
    if main_process:
        print(f"Teacher cache ready: {cache.path} ({cache.count} x {cache.dim}, {cache.dtype})")
    return 0


def cmd_eval(argv: list[str]) -> int:
    from talas.cli.eval import main as eval_main

    return eval_main(argv)


def cmd_router(argv: list[str]) -> int:
    from talas.models.router import main as router_main

    return router_main(argv)


def cmd_compare(argv: list[str]) -> int:
    from talas.compare.plan import compare

    try:
        return compare(argv)
    except KeyboardInterrupt:
        print("\nInterrupted. Finished methods are kept: rerun the same command to resume the comparison.", file=sys.stderr)
        return 130


def usage() -> str:
    lines = ["usage: talas <command> [options]   (talas <command> --help for its options)", "", "commands:"]
    lines += [f"  {name:<7} {text}" for name, text in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    handler = {"train": cmd_train, "cache": cmd_cache, "eval": cmd_eval, "router": cmd_router, "compare": cmd_compare}.get(command)
    if handler is None:
        print(f"error: unknown command {command!r}.\n{usage()}", file=sys.stderr)
        return 2
    debug = "--debug" in rest
    try:
        with console_logging():
            return handler(rest)
    except TalasError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nInterrupted. Finished cache chunks and checkpoints are kept: rerun to resume (train: --resume latest).", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
