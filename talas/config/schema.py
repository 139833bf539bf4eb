"""Typed configs: dataclass defaults < YAML/JSON file (--config) < command-line flags.

    cfg = resolve_config(TalasConfig, ["--config", "my.yaml", "--batch_size", "64"])

Every dataclass field becomes a ``--field`` flag whose help shows its default and valid range.
Unknown keys in a config file are errors (a typo must not silently fall back to a default), and
every value is checked against its field's range (``option(..., at_least=1)``) as it is read, so
a bad value fails with one line before anything heavy loads. Methods declare ranges the same way.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from talas.errors import ConfigError


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
    below: float | None = None, zero: bool = False, bookkeeping: bool = False,
) -> Any:
    """A config field with its help text, allowed values or numeric range, for the generated CLI flag.

    ``bookkeeping``: changing it does not change what is trained (where files go, how often to log),
    so ``--resume`` accepts a different value.
    """
    factory = {"default_factory": lambda: list(default)} if isinstance(default, list) else {"default": default}
    bounded = any(b is not None for b in (at_least, above, below))
    limits = Range(at_least, above, below, zero) if bounded else None
    return field(metadata={"help": help, "choices": choices, "range": limits, "bookkeeping": bookkeeping}, **factory)


@dataclass
class TrainConfig:
    """Options shared by every method: data, student, teacher, optimisation, checkpoints."""

    method: str = option("talas", "Distillation method.")
    config: str = option("", "YAML or JSON file with option values (command-line flags override it).", bookkeeping=True)
    # data
    train_data_path: str = option("data/train/distill_texts_clean.csv", "Training file (.csv, .tsv, .jsonl).")
    text_column: str = option("", "Column with single texts (overrides detection).")
    anchor_column: str = option("", "Column with anchors / premises / sentence1 (overrides detection).")
    positive_column: str = option("", "Column with positives / hypotheses / sentence2 (overrides detection).")
    negative_column: str = option("", "Column with hard negatives (overrides detection).")
    label_column: str = option("", "NLI label column (entailment pairs are positives, contradictions hard negatives).")
    skip_bad_rows: bool = option(False, "Skip empty or missing texts with a counted warning instead of failing.")
    max_train_samples: int = option(0, "Use only the first N training rows (0 = all).", at_least=0)
    # models
    student_model_name: str = option("bert-base-uncased", "Student model: local folder or hub id.")
    student_num_layers: int = option(0, "Keep only the student's first N transformer layers (0 = all).", at_least=0)
    student_layers: list[int] = option([], "Keep these transformer layers of the student instead (0-based, increasing, e.g. 0,3); "
                                       "overrides --student_num_layers.")
    freeze_embeddings: bool = option(False, "Keep the student's word embeddings fixed (fewer parameters to update).")
    student_dropout: float = option(-1.0, "Dropout probability in the student while training (-1 = the model's own; 0 = off).")
    student_pooling: str = option("last_token", "Student pooling.", ("cls", "mean", "last_token"))
    teacher_model_name: str = option("Qwen/Qwen3-Embedding-0.6B", "Teacher model: local folder or hub id.")
    pooling_method: str = option("last_token", "Teacher pooling.", ("cls", "mean", "last_token"))
    teacher_prompt: str = option("", "Instruction prefixed to every text the teacher embeds.")
    teacher_max_length: int = option(0, "Teacher max tokens (0 = same as --max_length).", at_least=2, zero=True)
    teacher_dtype: str = option("auto", "Teacher weights dtype (auto = bf16 on GPU, fp32 on CPU).", ("auto", "float32", "bfloat16", "float16"))
    # optimisation
    save_dir: str = option("checkpoints/talas", "Output folder: checkpoints, logs, config and the exported student.", bookkeeping=True)
    batch_size: int = option(128, "Pairs per optimiser step and device (before accumulation).", at_least=1)
    epochs: int = option(5, "Passes over the training data (0: as many as --max_steps needs).", at_least=0)
    max_steps: int = option(0, "Stop after this many optimiser steps (0 = run all epochs).", at_least=0)
    learning_rate: float = option(2e-5, "Peak learning rate of the student.", above=0)
    weight_decay: float = option(0.01, "AdamW weight decay (not applied to biases and norms).", at_least=0)
    lr_scheduler: str = option("cosine", "Learning-rate schedule after warm-up.", ("cosine", "linear", "constant"))
    warmup_ratio: float = option(0.1, "Fraction of optimiser steps spent warming up linearly.", at_least=0, below=1)
    max_grad_norm: float = option(1.0, "Gradient clipping norm (0 = off).", at_least=0)
    grad_accum_steps: int = option(1, "Micro-batches accumulated per optimiser step.", at_least=1)
    group_by_length: bool = option(True, "Batch texts of similar length together (less padding, faster steps).")
    max_length: int = option(256, "Student max tokens per text (at most the model's position limit).", at_least=2)
    temperature: float = option(0.05, "InfoNCE temperature.", above=0)
    seed: int = option(42, "Random seed (data order, dropout, initialisation).")
    mixed_precision: str = option("auto", "auto = bf16 autocast on CUDA, fp32 on CPU.", ("auto", "bf16", "no"))
    gradient_checkpointing: bool = option(False, "Trade compute for memory in the student.", bookkeeping=True)
    num_workers: int = option(0, "DataLoader worker processes.", at_least=0, bookkeeping=True)
    # bookkeeping
    log_steps: int = option(10, "Write a log line every N optimiser steps.", at_least=1, bookkeeping=True)
    save_steps: int = option(0, "Save a resumable checkpoint every N optimiser steps (0 = at each epoch end).", at_least=0, bookkeeping=True)
    save_total_limit: int = option(2, "Keep only the newest N checkpoints of this run (0 = keep all).", at_least=0, bookkeeping=True)
    resume: str = option("", "Resume from a checkpoint folder, or 'latest' for the newest in save_dir (its options must match).", bookkeeping=True)
    overwrite: bool = option(False, "Start a fresh run in a save_dir that holds an earlier run: its outputs are moved to <save_dir>/replaced/<time>/ (never deleted).", bookkeeping=True)
    eval_tasks: str = option("", "Comma-separated evaluation tasks run on validation splits after each epoch.", bookkeeping=True)
    eval_task_file: str = option("", "Task declaration file (default: the bundled suite).", bookkeeping=True)
    device: str = option("auto", "auto, cpu, cuda, cuda:1, ...", bookkeeping=True)

    @classmethod
    def flags(cls) -> list[dataclasses.Field]:
        return [f for f in dataclasses.fields(cls) if f.name != "config"]


def field_type(cls: type, f: dataclasses.Field) -> type:
    hint = typing.get_type_hints(cls)[f.name]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def parse_bool(text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def parse_int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in str(text).replace(" ", "").split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def coerce(cls: type, f: dataclasses.Field, value: Any, source: str) -> Any:
    """Convert a file or CLI value to the field's type, or fail naming the option."""
    kind = field_type(cls, f)
    try:
        if kind is bool:
            value = value if isinstance(value, bool) else parse_bool(value)
        elif typing.get_origin(kind) is list:
            value = [int(v) for v in value] if isinstance(value, list) else parse_int_list(value)
        elif kind is int and not (isinstance(value, bool) or isinstance(value, float) and not value.is_integer()):
            value = int(value)
        elif kind is float and not isinstance(value, bool):
            value = float(value)
        elif kind is str:
            value = str(value)
        else:
            raise ValueError
    except (ValueError, TypeError, argparse.ArgumentTypeError):
        raise ConfigError(f"{source}: option {f.name!r} expects {getattr(kind, '__name__', kind)}, got {value!r}.") from None
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"{source}: option {f.name!r} must be one of {', '.join(choices)}, got {value!r}.")
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


def check_options(cfg: Any) -> None:
    """Every field in its range, and the combinations no single range expresses (ConfigError otherwise).

    resolve_config checks each value as it reads it; this covers configs built in code too.
    """
    for f in dataclasses.fields(cfg):
        problem = out_of_range(f, getattr(cfg, f.name))
        if problem:
            raise ConfigError(problem)
    if cfg.epochs == 0 and cfg.max_steps == 0:
        raise ConfigError("--epochs 0 with --max_steps 0: nothing to train. Pass --epochs N ≥ 1, or --max_steps N ≥ 1 (--epochs 0 then runs as many epochs as the steps need).")
    if cfg.resume and cfg.overwrite:
        raise ConfigError("--resume continues the run in --save_dir and --overwrite replaces it: pass one of them.")


def build_parser(cls: type, prog: str = "talas train", description: str = "") -> argparse.ArgumentParser:
    """One flag per field; defaults are suppressed so we can tell what the user actually passed."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, argument_default=argparse.SUPPRESS,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--config", help="YAML or JSON file with option values (flags override it).")
    parser.add_argument("--debug", action="store_true", help="Show full tracebacks.")
    for f in cls.flags():
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        shown = ",".join(map(str, default)) if isinstance(default, list) else default
        limits = f.metadata.get("range")
        help_text = f"{f.metadata.get('help', '')} (default: {shown!r}{f'; valid: {limits}' if limits else ''})"
        choices = f.metadata.get("choices")
        kind = field_type(cls, f)
        if kind is bool:
            parser.add_argument(f"--{f.name}", type=parse_bool, nargs="?", const=True, metavar="BOOL", help=help_text)
        else:
            parser.add_argument(f"--{f.name}", type=str, choices=choices, help=help_text, metavar=None if choices else kind.__name__.upper() if isinstance(kind, type) else "LIST")
    return parser


def load_config_file(path: str) -> dict[str, Any]:
    if not os.path.isfile(path):
        raise ConfigError(f"Config file {path!r} does not exist.")
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    try:
        if path.endswith((".yaml", ".yml")):
            import yaml

            values = yaml.safe_load(text) or {}
        else:
            values = json.loads(text)
    except Exception as exc:  # yaml and json raise different types; both mean "not parseable"
        raise ConfigError(f"Config file {path!r} is not valid {'YAML' if path.endswith(('.yaml', '.yml')) else 'JSON'}: {exc}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"Config file {path!r} must hold a mapping of option names to values.")
    return values


def resolve_config(cls: type, argv: list[str], prog: str = "talas train") -> Any:
    """Defaults < --config file < flags; unknown file keys and bad values are ConfigErrors."""
    args = vars(build_parser(cls, prog).parse_args(argv))
    args.pop("debug", None)
    file_values = load_config_file(args["config"]) if args.get("config") else {}
    fields = {f.name: f for f in cls.flags()}
    unknown = sorted(set(file_values) - set(fields))
    if unknown:
        raise ConfigError(
            f"Config file {args['config']!r} has unknown option(s) {', '.join(unknown)}. "
            f"Run `{prog} --help` for the valid names."
        )
    values = {name: coerce(cls, fields[name], v, f"config file {args['config']!r}") for name, v in file_values.items()}
    values.update({name: coerce(cls, fields[name], v, "command line") for name, v in args.items() if name in fields})
    cfg = cls(**values)
    cfg.config = args.get("config") or ""
    check_options(cfg)
    return cfg


def config_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def save_config(cfg: Any, folder: str) -> str:
    """Write ``folder/config.json`` through a temporary file: readers never see a half-written one."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "config.json")
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(config_dict(cfg), handle, indent=2)
    os.replace(path + ".tmp", path)
    return path


def format_config(cfg: Any) -> str:
    return "\n".join(f"  {k} = {v!r}" for k, v in config_dict(cfg).items())


@dataclass
class CacheConfig(TrainConfig):
    """Options of methods that read sentence vectors from the teacher cache (TALAS, Stella)."""

    cache_teacher: bool = option(True, "Cache teacher embeddings once (False: run the teacher online every step).")
    cache_path: str = option("cache/teacher_train.safetensors", "Teacher cache file (a seed-format .pt path is read if it exists).", bookkeeping=True)
    normalize_cache: bool = option(False, "L2-normalise teacher vectors before caching.")
    cache_dtype: str = option("float32", "Storage dtype of the cache.", ("float32", "float16", "bfloat16"))
    strict_cache: bool = option(False, "Fail instead of rebuilding when the cache does not match the run.", bookkeeping=True)
    cache_batch_size: int = option(64, "Texts per teacher forward pass while caching.", at_least=1, bookkeeping=True)
    cache_chunk_size: int = option(4096, "Texts per resumable chunk of the cache build.", at_least=1, bookkeeping=True)
