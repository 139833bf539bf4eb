"""`talas compare`: train several methods on the same data, teacher, student and budget, and measure them.

    talas compare --methods talas,stella,dskd,cdm,emo --method_config dskd=config/dskd_tuned.yaml \\
        --train_data_path data/train/distill_texts_clean.csv --teacher_model_name T --student_model_name S \\
        --student_num_layers 2 --epochs 1 --batch_size 32 --eval_tasks STS-B,SICK-R --out results/compare

Every other flag is a `talas train` flag, given to each method whose config has it (``--cache_dtype``
reaches only the methods that read the cache); a flag no method has is an error. Data, models and
budget (epochs or max_steps, batch size, ...) must come out the same for every method: a
``--method_config`` file may set learning rates, weights or stages, not another budget.

Each method trains in its own process (``python -m talas.compare.worker``), so its peak memory is
its own; then the same process scores the exported student on the task file (validation and test).
Methods that read the teacher cache share one, built once beforehand in a process of its own (its
time and teacher passes are reported apart). Layout of ``--out``:

    cache/                      the shared teacher cache (a file per distinct cache key)
    runs/<method>/              the method's run folder (model/, train_log.jsonl, run_summary.json)
    logs/<method>.log           its process's output (and the cache build's: logs/cache-<id>.log)
    results/<method>.json       written last, atomically, by that process: a method with one is
                                finished and is not rerun (unless its settings changed: an error)
    comparison.json, comparison.md, plots/{scores,loss,time,memory}.png

An interrupted comparison resumes by running the same command again: finished methods are read
back, an unfinished one starts over (its earlier outputs move to runs/<method>/replaced/: a time
measurement needs a whole run).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass

from talas.errors import ConfigError, TalasError
from talas.faults import fault

#: Flags compare sets itself for every method.
RESERVED = {
    "method": "name the methods with --methods",
    "config": "give each method its file with --method_config METHOD=FILE",
    "save_dir": "each method trains in <--out>/runs/<method>",
    "resume": "rerun the same compare command to resume it",
    "overwrite": "compare restarts an unfinished method itself",
}
#: What every method must share: the data, the models and the budget.
SHARED = ("train_data_path", "max_train_samples", "teacher_model_name", "student_model_name", "student_num_layers", "student_layers",
          "max_length", "batch_size", "grad_accum_steps", "epochs", "max_steps", "seed", "device")
#: Settings that make one teacher cache (see talas/cache/ensure.py's cache key) besides the data.
CACHE_SETTINGS = ("teacher_model_name", "pooling_method", "normalize_cache", "cache_dtype", "teacher_prompt", "cache_path")


@dataclass
class MethodRun:
    """One method of the comparison: its training flags, resolved config and where its files go."""

    name: str
    argv: list[str]
    cfg: object
    reads_cache: bool
    cache_id: str | None
    run_dir: str
    result: str
    log: str


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="talas compare", allow_abbrev=False,
        description="Train methods on the same data, teacher, student and budget; measure and score each. "
                    "Any other flag is a `talas train` flag given to every method that has it.",
    )
    p.add_argument("--methods", required=True, help="comma-separated methods (or 'all': every registered one)")
    p.add_argument("--method_config", action="append", default=[], metavar="METHOD=FILE",
                   help="a YAML/JSON config file for one method (its validated settings); repeatable")
    p.add_argument("--out", required=True, help="output folder (rerun with the same folder to resume)")
    p.add_argument("--eval_task_file", default="", help="task declarations to score on (default: the bundled suite)")
    p.add_argument("--eval_tasks", default="", help="comma-separated task names of that file (default: all)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
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
    from talas.methods import METHODS, get_method

    names = list(METHODS) if text.strip() == "all" else [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ConfigError("--methods names no method; e.g. --methods talas,stella.")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"--methods lists {', '.join(repeated)} more than once; list each method once.")
    for name in names:
        get_method(name)  # unknown or planned: a clear error now
    return names


def method_files(entries: list[str], names: list[str]) -> dict[str, str]:
    from talas.config.schema import load_config_file

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


def split_flags(rest: list[str], names: list[str]) -> dict[str, list[str]]:
    """Each method's share of the training flags; reserved flags and flags no method has are errors."""
    from talas.methods import get_method

    groups = flag_groups(rest)
    fields = {n: {f.name for f in get_method(n).config_class.flags()} for n in names}
    for flag, _ in groups:
        if flag in RESERVED:
            raise ConfigError(f"talas compare sets --{flag} itself: {RESERVED[flag]}.")
        if not any(flag in known for known in fields.values()):
            raise ConfigError(f"--{flag} is not an option of any of {', '.join(names)}. Run `talas train --method M --help` for the options.")
    for flag in dict.fromkeys(flag for flag, _ in groups):
        having = [n for n in names if flag in fields[n]]
        if len(having) < len(names):  # e.g. --cache_dtype: only the methods that read the cache have it
            print(f"note: --{flag} applies to {', '.join(having)} only (the other methods have no such option).", file=sys.stderr)
    return {n: [tok for flag, tokens in groups if flag in fields[n] for tok in tokens] for n in names}


def cache_id(cfg) -> str:
    """Short id of the cache a config reads (same id = same cache, built once)."""
    from talas.models.teacher import teacher_max_length

    settings = [getattr(cfg, name) for name in CACHE_SETTINGS] + [teacher_max_length(cfg)]
    return hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:10]


def plan(args: argparse.Namespace, rest: list[str]) -> list[MethodRun]:
    """Resolve and check every method's config before anything runs (a bad option fails in seconds)."""
    from talas.cli import resolve
    from talas.methods import get_method

    names = method_names(args.methods)
    files = method_files(args.method_config, names)
    flags = split_flags(rest, names)
    out = args.out
    runs = []
    for name in names:
        run_dir = os.path.join(out, "runs", name)
        argv = ["--method", name, *(["--config", files[name]] if name in files else []), *flags[name],
                # no in-loop validation: training is timed alone, the comparison scores the student after
                "--eval_tasks", "", "--eval_task_file", "", "--save_dir", run_dir, "--overwrite", "true"]
        method_cls = get_method(name)
        has_cache = any(f.name == "cache_path" for f in method_cls.config_class.flags())
        if has_cache and not any(flag == "cache_path" for flag, _ in flag_groups(flags[name])):
            argv += ["--cache_path", os.path.join(out, "cache", "teacher.safetensors")]
        cfg, _ = resolve(argv, "talas compare")
        method_cls.validate(cfg)
        reads = method_cls.teacher_needs(cfg).vectors == "cached"
        runs.append(MethodRun(name, argv, cfg, reads, cache_id(cfg) if reads else None, run_dir,
                              os.path.join(out, "results", f"{name}.json"), os.path.join(out, "logs", f"{name}.log")))
    check_shared(runs, files)
    return runs


def check_shared(runs: list[MethodRun], files: dict[str, str]) -> None:
    """One budget, data and pair of models for all: name every setting that differs, and where from."""
    problems = []
    for name in SHARED:
        values = {run.name: getattr(run.cfg, name) for run in runs}
        if len({json.dumps(v) for v in values.values()}) > 1:
            shown = ", ".join(f"{m} {v!r}" + (f" (from {files[m]})" if m in files else "") for m, v in values.items())
            problems.append(f"{name}: {shown}")
    if problems:
        raise ConfigError("The methods must share data, models and budget, but these differ: " + "; ".join(problems)
                          + ". Set each once on the command line (it then applies to every method).")


def same_settings(recorded: dict, cfg) -> list[str]:
    """Differences between a finished method's recorded config and this run's (bookkeeping options aside)."""
    from talas.train.checkpoint import same_model
    from talas.config.schema import config_dict

    current = json.loads(json.dumps(config_dict(cfg)))
    found = []
    for f in dataclasses.fields(cfg):
        if f.metadata.get("bookkeeping") or f.name not in recorded:
            continue
        old, new = recorded[f.name], current[f.name]
        if f.name == "train_data_path":
            old, new = os.path.realpath(old), os.path.realpath(new)
        if old != new and not (f.name.endswith("_model_name") and same_model(old, new)):
            found.append(f"{f.name} {old!r} → {new!r}")
    return found


def read_json(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None


def finished(runs: list[MethodRun], evaluation: dict) -> dict[str, dict]:
    """Results of methods a previous invocation finished; an error if one was measured otherwise."""
    done = {}
    for run in runs:
        result = read_json(run.result)
        if result is None:
            continue
        changed = same_settings(result["config"], run.cfg)
        if result.get("evaluation") != evaluation:
            changed.append(f"evaluation {result.get('evaluation')} → {evaluation}")
        if changed:
            raise ConfigError(f"{run.result} was measured with other settings ({'; '.join(changed)}). Use another --out, "
                              f"or delete that file to measure {run.name} again.")
        done[run.name] = result
    return done


def run_worker(mode: str, argv: list[str], result: str, log: str, evaluation: dict | None = None) -> tuple[int, float]:
    """Run one worker process (same Python), its output appended to ``log``; (exit status, seconds)."""
    cmd = [sys.executable, "-m", "talas.compare.worker", mode, "--result", result]
    if evaluation is not None:
        cmd += ["--eval_task_file", evaluation["task_file"], "--eval_tasks", ",".join(evaluation["tasks"])]
    cmd += ["--", *argv]
    os.makedirs(os.path.dirname(log), exist_ok=True)
    began = time.perf_counter()
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')}\n$ {shlex.join(cmd)}\n")
        handle.flush()
        status = subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT, check=False).returncode
    return status, time.perf_counter() - began


def log_tail(path: str, lines: int = 6) -> str:
    with open(path, encoding="utf-8", errors="replace") as handle:
        tail = [line.rstrip() for line in handle.read().replace("\r", "\n").splitlines() if line.strip()][-lines:]
    return "\n".join("    " + line for line in tail)


def build_caches(runs: list[MethodRun], done: dict, out: str) -> tuple[dict[str, dict], list[str]]:
    """Build each cache that an unfinished method reads, once, in its own process; (results by id, failed ids)."""
    caches, failed = {}, []
    for cid in dict.fromkeys(run.cache_id for run in runs if run.reads_cache):
        users = [run for run in runs if run.cache_id == cid]
        path = os.path.join(out, "results", f"cache-{cid}.json")
        caches[cid] = read_json(path)
        if caches[cid] is not None or all(run.name in done for run in users):
            continue
        names = ", ".join(run.name for run in users)
        log = os.path.join(out, "logs", f"cache-{cid}.log")
        print(f"[cache] teacher cache for {names}: building (log: {log})", flush=True)
        status, _ = run_worker("cache", users[0].argv, path, log)
        caches[cid] = read_json(path) if status == 0 else None
        if caches[cid] is None:
            failed.append(cid)
            print(f"[cache] FAILED (exit status {status}); {names} cannot run. Last lines of {log}:\n{log_tail(log)}", flush=True)
            continue
        c = caches[cid]
        print(f"[cache] done in {c['seconds']:.1f} s: {c['teacher_forwards']['texts']:,} texts in "
              f"{c['teacher_forwards']['calls']:,} teacher passes, peak RSS {c['peak_memory_mb']['rss']} MB", flush=True)
    return caches, failed


def progress(index: int, total: int, run: MethodRun, result: dict) -> str:
    """The line printed when a method is done."""
    from talas.compare.report import method_row

    row = method_row(run.name, result, None)
    scores = " ".join(f"{split} {row['scores'][split]['mean']:.2f}" for split in ("validation", "test") if row["scores"].get(split))
    forwards = row["teacher_forwards"]["training"]
    return (f"[{index}/{total}] {run.name}: training {row['seconds']['training']:.1f} s ({row['steps']} steps, median "
            f"{row['median_step_s']} s/step), evaluation {row['seconds']['evaluation']:.1f} s; {forwards['calls']:,} teacher "
            f"passes in training; peak RSS {row['peak_memory_mb']['rss']} MB; {scores}")


def compare(argv: list[str]) -> int:
    """`talas compare ...`: plan and check every method, build the shared caches, run what is not finished, report."""
    from talas.compare.report import write_report
    from talas.eval.task_file import load_tasks

    args, rest = build_parser().parse_known_args(argv)
    runs = plan(args, rest)
    tasks = load_tasks(args.eval_task_file or None, [t.strip() for t in args.eval_tasks.split(",") if t.strip()] or None)
    evaluation = {"task_file": args.eval_task_file, "tasks": [t.name for t in tasks]}
    done = finished(runs, evaluation)
    caches, failed_caches = build_caches(runs, done, args.out)
    failed = []
    for index, run in enumerate(runs, start=1):
        if run.name in done:
            print(f"[{index}/{len(runs)}] {run.name}: already done ({run.result}); not rerun", flush=True)
            continue
        if run.cache_id in failed_caches:
            failed.append(run.name)
            continue
        print(f"[{index}/{len(runs)}] {run.name}: training and scoring (log: {run.log})", flush=True)
        status, _ = run_worker("train", run.argv, run.result, run.log, evaluation)
        result = read_json(run.result) if status == 0 else None
        if result is None:
            failed.append(run.name)
            print(f"[{index}/{len(runs)}] {run.name}: FAILED (exit status {status}). Last lines of {run.log}:\n{log_tail(run.log)}", flush=True)
            continue
        done[run.name] = result
        print(progress(index, len(runs), run, result), flush=True)
        fault("compare_method_done", index)  # tests: a comparison killed here resumes without rerunning this method
    if done:
        table = write_report(args.out, ["talas", "compare", *argv], runs, done, caches)
        print(table)
        print(f"wrote {os.path.join(args.out, 'comparison.json')}, comparison.md and plots/", flush=True)
    if failed:
        raise TalasError(f"{len(failed)} method(s) did not finish: {', '.join(failed)} (see their logs under "
                         f"{os.path.join(args.out, 'logs')}). Rerun the same command to retry them; finished methods are not rerun.")
    return 0
