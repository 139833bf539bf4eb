"""`talas compare`: train several methods on the same data, teacher, student and budget, and measure them.

    talas compare --methods talas,stella,dskd,cdm,emo --method_config dskd=config/dskd_tuned.yaml \\
        --train_data_path data/train/distill_texts_clean.csv --teacher_model_name T --student_model_name S \\
        --student_num_layers 2 --epochs 1 --batch_size 32 --eval_tasks STS-B,SICK-R --out results/compare

Every other flag is a `talas train` flag (or its alias, e.g. ``--num_train_epochs``), given to each
method whose config has it (``--cache_dtype`` reaches only the methods that read the cache); a flag no
method has is an error naming the closest ones. Data, models and budget (epochs or max_steps,
batch size, ...) must come out the same for every method: a ``--method_config`` file may set
learning rates, weights or stages, not another budget. Running, resuming and reporting:
talas/compare/plan.py.
"""

from __future__ import annotations

import os
import sys

from talas.cli.flags import FlagParser, either, suggestions
from talas.cli.options import add_command_flags
from talas.cli.train import resolve
from talas.compare.plan import check_shared, compare, method_run
from talas.config import aliases_of, load_config_file, option_fields
from talas.errors import ConfigError
from talas.methods import METHODS, get_method

#: Flags compare sets itself for every method.
RESERVED = {
    "method": "name the methods with --methods",
    "config": "give each method its file with --method_config METHOD=FILE",
    "save_dir": "each method trains in <--out>/runs/<method>",
    "resume": "rerun the same compare command to resume it",
    "overwrite": "compare restarts an unfinished method itself",
}


def build_parser() -> FlagParser:
    p = FlagParser(
        prog="talas compare",
        description="Train methods on the same data, teacher, student and budget; measure and score each. "
                    "Any other flag is a `talas train` flag given to every method that has it.",
    )
    add_command_flags(p, config=False)
    p.add_argument("--methods", required=True, help="comma-separated methods (or 'all': every registered one)")
    p.add_argument("--method_config", action="append", default=[], metavar="METHOD=FILE",
                   help="a YAML/JSON config file for one method (its validated settings); repeatable")
    p.add_argument("--out", required=True, help="output folder (rerun with the same folder to resume)")
    p.add_argument("--eval_task_file", default="", help="task declarations to score on (default: the bundled suite)")
    p.add_argument("--eval_tasks", default="", help="comma-separated task names of that file (default: all)")
    return p


def flag_groups(argv: list[str]) -> list[tuple[str, list[str]]]:
    """Split ``--name value ...`` tokens into (name, tokens) per flag, keeping their order."""
    groups: list[tuple[str, list[str]]] = []
    for token in argv:
        if token.startswith("--"):
            groups.append((token[2:].split("=", 1)[0], [token]))
        elif groups:
            groups[-1][1].append(token)
        else:
            raise ConfigError(f"Unexpected argument {token!r}: training options are given as --name value.")
    return groups


def method_names(text: str) -> list[str]:
    names = list(METHODS) if text.strip() == "all" else [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ConfigError("--methods names no method; e.g. --methods talas,stella.")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"--methods lists {', '.join(repeated)} more than once; list each method once.")
    for name in names:
        get_method(name)  # unknown: a clear error now
    return names


def method_files(entries: list[str], names: list[str]) -> dict[str, str]:
    files = {}
    for entry in entries:
        name, sep, path = entry.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"--method_config {entry!r}: expected METHOD=FILE, e.g. --method_config dskd=config/dskd_tuned.yaml.")
        if name not in names:
            raise ConfigError(f"--method_config {entry!r}: {name!r} is not among --methods ({', '.join(names)}).")
        if name in files:
            raise ConfigError(f"--method_config gives {name!r} two files ({files[name]}, {path}); give one.")
        declared = load_config_file(path).get("method", name)
        if declared != name:
            raise ConfigError(f"--method_config {entry!r}: the file is for method {declared!r}, not {name!r}.")
        files[name] = path
    return files


def split_flags(rest: list[str], names: list[str], own: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Each method's share of the training flags; reserved flags and flags no method has are errors.

    An alias counts as the option it stands for (``--output_dir`` is the reserved ``--save_dir``);
    its tokens go to the methods as typed, since `talas train` reads aliases too. ``own``: compare's
    own flags, also suggested for a flag no method has.
    """
    fields = {n: {f.name for f in option_fields(get_method(n).config_class)} for n in names}
    aliases = {a.name: a.option for n in names for a in aliases_of(get_method(n).config_class).values()}
    groups = [(aliases.get(flag, flag), tokens) for flag, tokens in flag_groups(rest)]
    for flag, tokens in groups:
        typed = tokens[0][2:].split("=", 1)[0]
        if flag in RESERVED:
            raise ConfigError(f"talas compare sets --{flag} itself{f' (--{typed} is its alias)' if typed != flag else ''}: {RESERVED[flag]}.")
        if not any(flag in known for known in fields.values()):
            known = {**(own or {}), **{name: name for n in names for name in fields[n]}, **aliases}
            close = suggestions(flag, known)
            hint = f" (did you mean {either(close)}?)" if close else ""
            raise ConfigError(f"--{flag} is not an option of any of {', '.join(names)}{hint}. "
                              "Run `talas train --method M --help` for the options.")
    for flag in dict.fromkeys(flag for flag, _ in groups):
        having = [n for n in names if flag in fields[n]]
        if len(having) < len(names):  # e.g. --cache_dtype: only the methods that read the cache have it
            print(f"note: --{flag} applies to {', '.join(having)} only (the other methods have no such option).", file=sys.stderr)
    return {n: [tok for flag, tokens in groups if flag in fields[n] for tok in tokens] for n in names}


def training_flags(name: str, flags: list[str], file: str | None, out: str) -> list[str]:
    """The `talas train` flags one method's worker runs with."""
    argv = ["--method", name, *(["--config", file] if file else []), *flags,
            # no in-loop validation: training is timed alone, the comparison scores the student after
            "--eval_tasks", "", "--eval_task_file", "", "--save_dir", os.path.join(out, "runs", name), "--overwrite", "true"]
    has_cache = any(f.name == "cache_path" for f in option_fields(get_method(name).config_class))
    if has_cache and not any(flag == "cache_path" for flag, _ in flag_groups(flags)):
        argv += ["--cache_path", os.path.join(out, "cache", "teacher.safetensors")]
    return argv


def main(argv: list[str]) -> int:
    """Resolve and check every method's config before anything runs (a bad option fails in seconds), then compare."""
    from talas.eval.task_file import load_tasks

    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    names = method_names(args.methods)
    files = method_files(args.method_config, names)
    flags = split_flags(rest, names, parser.known_flags())
    runs = []
    for name in names:
        method_argv = training_flags(name, flags[name], files.get(name), args.out)
        runs.append(method_run(name, method_argv, resolve(method_argv, "talas compare"), args.out))
    check_shared(runs, files)
    tasks = load_tasks(args.eval_task_file or None, [t.strip() for t in args.eval_tasks.split(",") if t.strip()] or None)
    evaluation = {"task_file": args.eval_task_file, "tasks": [t.name for t in tasks]}
    try:
        return compare(runs, args.out, evaluation, ["talas", "compare", *argv])
    except KeyboardInterrupt:
        print("\nInterrupted. Finished methods are kept: rerun the same command to resume the comparison.", file=sys.stderr)
        return 130
