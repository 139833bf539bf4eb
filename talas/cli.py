"""Command line: `talas train|cache|eval ...` (and `python main.py ...`, the seed's entry point).

    talas train --method talas --train_data_path data/train/distill_texts_clean.csv \\
        --student_model_name bert-base-uncased --teacher_model_name Qwen/Qwen3-Embedding-0.6B
    talas cache --teacher_model_name Qwen/Qwen3-Embedding-0.6B    # build the teacher cache only
    talas eval --model checkpoints/talas/model                    # score on the bundled suite

User errors print one line (`error: ...`) and exit with status 2; `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from talas.errors import TalasError

COMMANDS = {
    "train": "Distil a teacher into a student (builds or reuses the teacher cache).",
    "cache": "Build the teacher cache without training (or --convert a seed-format .pt cache).",
    "eval": "Score models on declared evaluation tasks (STS, pair classification, classification).",
}


def peek_method(argv: list[str]) -> str:
    """The method named by --method, else by the --config file, else talas."""
    from talas.config import load_config_file

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
    from talas.config import build_parser, resolve_config
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
    from talas.train import train

    cfg, _ = resolve(argv, "talas train")
    train(cfg)
    return 0


def cmd_cache(argv: list[str]) -> int:
    from talas.data import load_from_config
    from talas.legacy import convert_legacy
    from talas.teacher import cache_file, ensure_cache

    convert = (("--convert",), {"metavar": "PT_FILE", "help": "Convert this seed-format .pt cache (rows = the data's examples) and exit."})
    cfg, extras = resolve(argv, "talas cache", (convert,))
    data = load_from_config(cfg)
    if extras.get("convert"):
        out = cache_file(cfg) if os.path.abspath(cache_file(cfg)) != os.path.abspath(extras["convert"]) else extras["convert"] + ".safetensors"
        cache = convert_legacy(extras["convert"], out, data.anchors)
        print(f"Converted {cache.count} seed-format embeddings (dim {cache.dim}) to {out}")
        return 0
    cache, _ = ensure_cache(cfg, data.unique_texts(), data.anchors)
    print(f"Teacher cache ready: {cache.path} ({cache.count} x {cache.dim}, {cache.dtype})")
    return 0


def cmd_eval(argv: list[str]) -> int:
    from talas.eval_cli import main as eval_main

    return eval_main(argv)


def usage() -> str:
    lines = ["usage: talas <command> [options]   (talas <command> --help for its options)", "", "commands:"]
    lines += [f"  {name:<6} {text}" for name, text in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    handler = {"train": cmd_train, "cache": cmd_cache, "eval": cmd_eval}.get(command)
    if handler is None:
        print(f"error: unknown command {command!r}.\n{usage()}", file=sys.stderr)
        return 2
    debug = "--debug" in rest
    try:
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
