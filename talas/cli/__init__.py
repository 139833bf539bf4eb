"""Command line: `talas train|cache|eval|router|compare ...` (and `python main.py ...`, the seed's entry point).

    talas train --method talas --train_data_path data/train/distill_texts_clean.csv \\
        --student_model_name bert-base-uncased --teacher_model_name Qwen/Qwen3-Embedding-0.6B
    talas cache --teacher_model_name Qwen/Qwen3-Embedding-0.6B    # build the teacher cache only
    talas eval --model checkpoints/talas/model                    # score on the bundled suite
    talas compare --methods talas,stella --out results/compare    # train, measure and score methods side by side
    talas router --query_model checkpoints/talas/model --document_model <teacher> --output_dir asym

Each command lives in its own module here and derives its flags from the option schema
(talas/config). User errors print one line (`error: ...`) and exit with status 2; `--debug` shows
the traceback; `--quiet` shows only warnings, `--verbose` debug messages too.
"""

from __future__ import annotations

import importlib
import sys

from talas.cli.console import console_logging
from talas.cli.options import verbosity
from talas.errors import TalasError

COMMANDS = {
    "train": "Distil a teacher into a student (builds or reuses the teacher cache).",
    "cache": "Build the teacher cache without training; --list, --verify, --prune the stored caches; --convert a seed .pt.",
    "eval": "Score models on declared evaluation tasks (STS, pair classification, classification, retrieval).",
    "router": "Save one model that encodes queries with the student and documents with the teacher.",
    "compare": "Train several methods on the same data, models and budget; measure and score each.",
}


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
    if command not in COMMANDS:
        print(f"error: unknown command {command!r}.\n{usage()}", file=sys.stderr)
        return 2
    # Imported on use: `talas eval` need not load the training stack, nor `talas --help` anything.
    handler = importlib.import_module(f"talas.cli.{command}").main
    try:
        with console_logging(verbosity(rest)):
            return handler(rest)
    except TalasError as exc:
        if "--debug" in rest:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nInterrupted. Finished cache chunks and checkpoints are kept: rerun to resume (train: --resume latest).", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
