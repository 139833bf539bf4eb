"""What an option is: ``option(default, help, ...)`` declares a dataclass field with its range,
choices, group and help; ``config_from_values`` turns plain values into a checked config.

Everything else (command-line flags, ``--help``, YAML loading, ``config.json``, the seed's
``config/<method>_config.py``) is derived from these declarations, so an option is written once.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from talas.errors import ConfigError

#: Option groups in the order ``--help`` shows them, with their headings.
GROUPS = {
    "data": "data",
    "models": "models",
    "student": "student model",
    "teacher": "teacher model",
    "cache": "teacher cache",
    "training": "training",
    "method": "method",
    "evaluation": "evaluation",
    "logging": "output, checkpoints and logs",
    "device": "devices and speed",
}


@dataclass(frozen=True)
class Range:
    """Valid values of a numeric option; ``zero``: 0 is also allowed (it means "off" or "default")."""

    at_least: float | None = None
    above: float | None = None
    below: float | None = None
    zero: bool = False

    def __contains__(self, value: float) -> bool:
        if self.zero and value == 0:
            return True
        return not (
            (self.at_least is not None and value < self.at_least)
            or (self.above is not None and value <= self.above)
            or (self.below is not None and value >= self.below)
        )

    def __str__(self) -> str:
        if self.at_least is not None and self.below is not None:
            text = f"in [{self.at_least:g}, {self.below:g})"
        else:
            parts = [f"≥ {self.at_least:g}" if self.at_least is not None else "", f"> {self.above:g}" if self.above is not None else "",
                     f"< {self.below:g}" if self.below is not None else ""]
            text = " and ".join(p for p in parts if p)
        return f"0 or {text}" if self.zero else text


def option(
    default: Any, help: str, choices: tuple | None = None, *, at_least: float | None = None, above: float | None = None,
    below: float | None = None, zero: bool = False, group: str = "method", bookkeeping: bool = False, aliases: tuple[str, ...] = (),
) -> Any:
    """A config field with its help text, allowed values or numeric range, and the ``--help`` group it is listed in.

    ``group`` defaults to "method": the options a method's own config adds. ``bookkeeping``: changing
    it does not change what is trained (where files go, how often to log), so ``--resume`` accepts a
    different value. ``aliases``: other names of the option, as flags and in config files ("output_dir");
    "bf16=bf16" is a switch that sets the option to that value (see Alias).
    """
    if group not in GROUPS:
        raise ValueError(f"option group {group!r} is not one of {', '.join(GROUPS)}")
    factory = {"default_factory": lambda: list(default)} if isinstance(default, list) else {"default": default}
    bounded = any(b is not None for b in (at_least, above, below))
    limits = Range(at_least, above, below, zero) if bounded else None
    metadata = {"help": help, "choices": choices, "range": limits, "group": group, "bookkeeping": bookkeeping, "aliases": aliases}
    return field(metadata=metadata, **factory)


def option_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of a config class that are options (the ``config`` field records the file they came from)."""
    return [f for f in dataclasses.fields(cls) if f.name != "config"]


@dataclass(frozen=True)
class Alias:
    """Another name of an option, so that users can keep the Hugging Face TrainingArguments names they know.

    ``value`` None: the alias takes the option's value (``--output_dir x`` is ``--save_dir x``). Otherwise
    it is a switch: true sets the option to ``value`` (``--bf16`` is ``--mixed_precision bf16``), false to "no".
    """

    name: str
    option: str
    value: str | None = None


def field_aliases(f: dataclasses.Field) -> list[Alias]:
    """The aliases declared on one option ("output_dir", or "bf16=bf16" for a switch)."""
    entries = (entry.partition("=") for entry in f.metadata.get("aliases", ()))
    return [Alias(name, f.name, value if switch else None) for name, switch, value in entries]


def aliases_of(cls: type) -> dict[str, Alias]:
    """The aliases of the options of ``cls``, by alias name."""
    fields = {f.name for f in option_fields(cls)}
    table = {}
    for alias in (a for f in option_fields(cls) for a in field_aliases(f)):
        if alias.name in fields or alias.name in table:
            raise ValueError(f"alias {alias.name!r} of option {alias.option!r} is already the name of an option or alias")
        table[alias.name] = alias
    return table


def alias_value(cls: type, alias: Alias, value: Any, source: str) -> Any:
    """The option value that ``value`` given under ``alias`` stands for (converted; ConfigError naming the alias)."""
    f = next(f for f in option_fields(cls) if f.name == alias.option)
    if alias.value is None:
        return coerce(cls, f, value, f"{source} (--{alias.name})")
    try:
        on = value if isinstance(value, bool) else parse_bool(value)
    except ValueError:
        raise ConfigError(f"{source}: --{alias.name} expects true or false, got {value!r}.") from None
    choices = f.metadata.get("choices") or ()
    if on and alias.value not in choices:
        usable = [f"--{a.name}" for a in aliases_of(cls).values() if a.option == alias.option and a.value in choices]
        instead = f"; use {' or '.join(usable)} instead" if usable else ""
        raise ConfigError(f"{source}: --{alias.name} asks for {alias.option} {alias.value}, which TALAS does not support "
                          f"({alias.option}: {', '.join(choices)}){instead}.")
    return coerce(cls, f, alias.value if on else "no", f"{source} (--{alias.name})")


def unalias(cls: type, values: dict[str, Any], source: str) -> dict[str, Any]:
    """``values`` with alias names replaced by the options they stand for.

    An option given under two names with different values is a ConfigError naming both: neither may
    silently win.
    """
    table = aliases_of(cls)
    fields = {f.name: f for f in option_fields(cls)}
    resolved = {name: value for name, value in values.items() if name not in table}
    given_as = {name: name for name in resolved}
    for name, value in values.items():
        alias = table.get(name)
        if alias is None:
            continue
        meant = alias_value(cls, alias, value, source)
        option = alias.option
        if option in resolved and coerce(cls, fields[option], resolved[option], source) != meant:
            raise ConfigError(f"{source}: --{given_as[option]} and --{name} both set option {option!r}, to "
                              f"{resolved[option]!r} and {meant!r}; pass one of them.")
        resolved[option], given_as[option] = meant, name
    return resolved


def default_of(f: dataclasses.Field) -> Any:
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def field_type(cls: type, f: dataclasses.Field) -> type:
    """The field's type with ``None`` taken out of an optional one (``int | None`` -> ``int``)."""
    hint = typing.get_type_hints(cls)[f.name]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def type_name(kind: Any) -> str:
    if typing.get_origin(kind) is list:
        return f"list of {typing.get_args(kind)[0].__name__}"
    return getattr(kind, "__name__", str(kind))


def parse_bool(text: Any) -> bool:
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def parse_list(text: Any, item: type) -> list:
    """``[1, 2]`` or ``"1,2"`` (ints) / ``["a", "b"]`` or ``"a"`` (strings, which may hold commas)."""
    if isinstance(text, (list, tuple)):
        return [item(v) for v in text]
    if item is int:
        return [int(x) for x in str(text).replace(" ", "").split(",") if x]
    return [str(text)]


def coerce(cls: type, f: dataclasses.Field, value: Any, source: str) -> Any:
    """Convert a file or command-line value to the field's type, or fail naming the option."""
    kind = field_type(cls, f)
    try:
        if value is None and default_of(f) is None:
            return None
        if kind is bool:
            value = value if isinstance(value, bool) else parse_bool(value)
        elif typing.get_origin(kind) is list:
            value = parse_list(value, typing.get_args(kind)[0])
        elif kind is int and not (isinstance(value, bool) or isinstance(value, float) and not value.is_integer()):
            value = int(value)
        elif kind is float and not isinstance(value, bool):
            value = float(value)
        elif kind is str:
            value = str(value)
        else:
            raise ValueError
    except (ValueError, TypeError):
        raise ConfigError(f"{source}: option {f.name!r} expects {type_name(kind)}, got {value!r}.") from None
    choices = f.metadata.get("choices")
    wrong = [v for v in (value if isinstance(value, list) else [value]) if choices and v not in choices]
    if wrong:
        raise ConfigError(f"{source}: option {f.name!r} must be one of {', '.join(choices)}, got {wrong[0]!r}.")
    problem = out_of_range(f, value)
    if problem:
        raise ConfigError(f"{source}: {problem}")
    return value


def out_of_range(f: dataclasses.Field, value: Any) -> str | None:
    """Why ``value`` is not valid for field ``f`` (NaN and infinity never are), or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    limits = f.metadata.get("range")
    shown = f" (valid: {limits})" if limits else ""
    if isinstance(value, float) and not math.isfinite(value):
        return f"--{f.name} {value} is not a finite number{shown}."
    if limits is not None and value not in limits:
        number = f"{value:g}" if isinstance(value, float) else str(value)
        return f"--{f.name} {number} is out of range: it must be {limits}."
    return None


def check_ranges(cfg: Any) -> None:
    """Every field of ``cfg`` in its range (ConfigError naming the first that is not)."""
    for f in dataclasses.fields(cfg):
        problem = out_of_range(f, getattr(cfg, f.name))
        if problem:
            raise ConfigError(problem)


def config_from_values(cls: type, values: dict[str, Any], source: str = "values") -> Any:
    """Build ``cls`` from option values (strings are converted as on the command line), checked.

        cfg = config_from_values(TalasConfig, {"batch_size": "64", "w_kd": 0.8})

    An unknown name or a bad value is a ConfigError naming the option and ``source``. Combinations
    that no single range expresses are checked by the config's ``check()`` when it has one.
    """
    fields = {f.name: f for f in option_fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{source}: unknown option(s) {', '.join(unknown)}; valid names: {', '.join(fields)}.")
    cfg = cls(**{name: coerce(cls, fields[name], value, source) for name, value in values.items()})
    check = getattr(cfg, "check", None)
    if check is not None:
        check()
    else:
        check_ranges(cfg)
    return cfg


def differences(cfg: Any) -> dict[str, Any]:
    """The options of ``cfg`` whose value is not their default, in declaration order."""
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if getattr(cfg, f.name) != default_of(f)}
