"""`talas train` (and `python main.py`): the general options plus those of the chosen method (default talas)."""

from __future__ import annotations

import argparse
from typing import Any

from talas.cli.options import build_parser, parse
from talas.config import load_config_file
from talas.methods import METHODS, get_method

DESCRIPTION = ("Distil a teacher into a student (builds or reuses the teacher cache). This help lists the options "
               "every method shares and those of method {method}; `talas train --method X --help` lists method X's "
               "(methods: {methods}).")


def peek_method(argv: list[str]) -> str:
    """The method named by --method, else by the --config file, else talas (whole flag names only: --meth is not --method)."""
    peek = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    peek.add_argument("--method")
    peek.add_argument("--config")
    known, _ = peek.parse_known_args(argv)
    if known.method:
        return known.method
    if known.config:
        return str(load_config_file(known.config).get("method", "talas"))
    return "talas"


def train_parser(method: str, prog: str = "talas train") -> argparse.ArgumentParser:
    cls = get_method(method).config_class
    description = DESCRIPTION.format(method=method, methods=", ".join(METHODS))
    return build_parser(cls, prog, description, headings={"method": f"method {method}"})


def resolve(argv: list[str], prog: str = "talas train") -> Any:
    """The training config of ``argv`` (its method's config class, chosen by --method or the --config file)."""
    method = peek_method(argv)
    cfg, _ = parse(train_parser(method, prog), get_method(method).config_class, argv, prog)
    return cfg


def main(argv: list[str]) -> int:
    from talas.train.loop import train

    train(resolve(argv))
    return 0
