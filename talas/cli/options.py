"""Command-line flags derived from the option schema: one ``--name`` per option, grouped in ``--help``.

Defaults < ``--config`` file < flags. Values are converted and checked by the schema
(talas/config/options.py), so a bad one fails with one line naming the option and where it came from.
An option's aliases (Hugging Face TrainingArguments names) are flags too, listed in its help.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Callable, Iterable
from typing import Any

from talas.cli.flags import FlagParser, either, suggestions
from talas.config import GROUPS, aliases_of, coerce, config_from_values, load_config_file, option_fields, unalias
from talas.config.options import default_of, field_aliases, field_type
from talas.errors import ConfigError

#: Flags every command has; they steer the command, not what it computes.
COMMAND_FLAGS = ("config", "debug", "quiet", "verbose")


def add_command_flags(parser: argparse.ArgumentParser, config: bool = True) -> None:
    group = parser.add_argument_group("command")
    if config:
        group.add_argument("--config", help="YAML or JSON file with option values (flags override it).")
    group.add_argument("--debug", action="store_true", help="Show full tracebacks.")
    group.add_argument("--quiet", action="store_true", help="Show only warnings and errors.")
    group.add_argument("--verbose", action="store_true", help="Show debug messages too.")


def alias_note(f: dataclasses.Field) -> str | None:
    """``alias: --output_dir``; a switch shows the value it sets, or that it is refused."""
    names = []
    for alias in field_aliases(f):
        if alias.value is None:
            names.append(f"--{alias.name}")
        elif alias.value in (f.metadata.get("choices") or ()):
            names.append(f"--{alias.name} = {alias.value}")
        else:
            names.append(f"--{alias.name}: refused, {alias.value} is not supported")
    return f"alias{'es' if len(names) > 1 else ''}: {', '.join(names)}" if names else None


def help_text(f: dataclasses.Field, repeatable: bool = False) -> str:
    """The option's help with its default, range and aliases; an unset default (None) or a repeatable flag says none."""
    default = default_of(f)
    notes = ["repeatable"] if repeatable else []
    if not repeatable and default is not None:
        notes.append(f"default: {','.join(map(str, default)) if isinstance(default, list) else default!r}")
    if f.metadata.get("range"):
        notes.append(f"valid: {f.metadata['range']}")
    text = f.metadata.get("help", "") + (f" ({'; '.join(notes)})" if notes else "")
    return text + (f" ({alias_note(f)})" if alias_note(f) else "")


def add_option(group: argparse._ArgumentGroup, cls: type, f: dataclasses.Field, name: str | None = None, shown: bool = True) -> None:
    """Every value arrives as text and is converted by the schema (so its errors name the option).

    ``name``: an alias of the option (its own flag, so that giving both can be told apart); ``shown``:
    listed in --help (an alias is, in its option's help).
    """
    kind = field_type(cls, f)
    choices = f.metadata.get("choices")
    flag, text = f"--{name or f.name}", help_text(f) if shown else argparse.SUPPRESS
    if kind is bool:
        group.add_argument(flag, nargs="?", const=True, metavar="BOOL", help=text)
    elif typing.get_origin(kind) is list and typing.get_args(kind)[0] is str:
        # Repeatable: each use adds one value (several --model, one --pooling per model).
        group.add_argument(flag, action="append", choices=choices, metavar=None if choices else "STR",
                           help=help_text(f, True) if shown else text)
    else:
        metavar = None if choices else "LIST" if typing.get_origin(kind) is list else kind.__name__.upper()
        group.add_argument(flag, choices=choices, metavar=metavar, help=text)


def add_aliases(parser: FlagParser, cls: type, fields: list[dataclasses.Field]) -> None:
    """One hidden flag per alias of ``fields``: a switch (``--bf16``) takes an optional true/false."""
    hidden = parser.add_argument_group("aliases")
    by_name = {f.name: f for f in fields}
    for alias in aliases_of(cls).values():
        if alias.option in by_name:
            parser.alias_of[alias.name] = alias.option
            if alias.value is None:
                add_option(hidden, cls, by_name[alias.option], alias.name, shown=False)
            else:
                hidden.add_argument(f"--{alias.name}", nargs="?", const=True, metavar="BOOL", help=argparse.SUPPRESS)


def build_parser(cls: type, prog: str = "talas train", description: str = "", include: Callable[[dataclasses.Field], bool] | None = None,
                 headings: dict[str, str] | None = None, config: bool = True) -> argparse.ArgumentParser:
    """A parser with one flag per option of ``cls`` that ``include`` keeps, in the schema's groups.

    Defaults are suppressed so that what the user passed can be told apart; ``--help`` shows them.
    """
    parser = FlagParser(prog=prog, description=description, argument_default=argparse.SUPPRESS)
    add_command_flags(parser, config)
    chosen = [f for f in option_fields(cls) if include is None or include(f)]
    titles = {**GROUPS, **(headings or {})}
    for group in GROUPS:
        members = [f for f in chosen if f.metadata.get("group", "method") == group]
        if members:
            arguments = parser.add_argument_group(titles[group])
            for f in members:
                add_option(arguments, cls, f)
    add_aliases(parser, cls, chosen)
    return parser


def verbosity(argv: Iterable[str]) -> str:
    argv = list(argv)
    return "quiet" if "--quiet" in argv else "verbose" if "--verbose" in argv else "normal"


def parse(parser: FlagParser, cls: type, argv: list[str], prog: str) -> tuple[Any, dict[str, Any]]:
    """(the config, the parsed flags that are not options of ``cls``) from ``argv``; aliases become their options."""
    args = unalias(cls, vars(parser.parse_flags(argv)), "command line")
    path = args.pop("config", None)
    for name in COMMAND_FLAGS:
        args.pop(name, None)
    fields = {f.name: f for f in option_fields(cls)}
    file_values = unalias(cls, load_config_file(path), f"config file {path!r}") if path else {}
    unknown = sorted(set(file_values) - set(fields))
    if unknown:
        known = {**{name: name for name in fields}, **{a.name: a.option for a in aliases_of(cls).values()}}
        close = {name: suggestions(name, known) for name in unknown}
        named = ", ".join(name + (f" (did you mean {either(close[name], '')}?)" if close[name] else "") for name in unknown)
        raise ConfigError(f"Config file {path!r} has unknown option(s) {named}. Run `{prog} --help` for the valid names.")
    values = {name: coerce(cls, fields[name], v, f"config file {path!r}") for name, v in file_values.items()}
    values.update({name: coerce(cls, fields[name], v, "command line") for name, v in args.items() if name in fields})
    cfg = config_from_values(cls, values, "command line")
    if "config" in {f.name for f in dataclasses.fields(cls)}:
        cfg.config = path or ""
    return cfg, {name: v for name, v in args.items() if name not in fields}


def resolve_config(cls: type, argv: list[str], prog: str = "talas train") -> Any:
    """Every option of ``cls`` as a flag: defaults < --config file < flags; errors are ConfigErrors."""
    return parse(build_parser(cls, prog), cls, argv, prog)[0]
