"""Running a comparison (the flags of `talas compare` are read in talas/cli/compare.py): methods resolved there
are checked to share data, models and budget, then run and reported.

Each method trains in its own process (``python -m talas.cli.worker``), so its peak memory is
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

import dataclasses
import hashlib
import json
import logging
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass

from talas.compare.report import SHARED, method_row, write_report
from talas.errors import ConfigError, TalasError
from talas.faults import fault

logger = logging.getLogger(__name__)

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


def cache_id(cfg) -> str:
    """Short id of the cache a config reads (same id = same cache, built once)."""
    from talas.models.teacher import teacher_max_length

    settings = [getattr(cfg, name) for name in CACHE_SETTINGS] + [teacher_max_length(cfg)]
    return hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:10]


def method_run(name: str, argv: list[str], cfg, out: str) -> MethodRun:
    """One method's part of the comparison in ``out``, from its training flags and their resolved config (checked here)."""
    from talas.methods import get_method

    method_cls = get_method(name)
    method_cls.validate(cfg)
    reads = method_cls.teacher_needs(cfg).vectors == "cached"
    return MethodRun(name, argv, cfg, reads, cache_id(cfg) if reads else None, cfg.save_dir,
                     os.path.join(out, "results", f"{name}.json"), os.path.join(out, "logs", f"{name}.log"))


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
    from talas.config import config_dict
    from talas.train.checkpoint import same_model

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
    cmd = [sys.executable, "-m", "talas.cli.worker", mode, "--result", result]
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
        logger.info(f"[cache] teacher cache for {names}: building (log: {log})")
        status, _ = run_worker("cache", users[0].argv, path, log)
        caches[cid] = read_json(path) if status == 0 else None
        if caches[cid] is None:
            failed.append(cid)
            logger.info(f"[cache] FAILED (exit status {status}); {names} cannot run. Last lines of {log}:\n{log_tail(log)}")
            continue
        c = caches[cid]
        logger.info(f"[cache] done in {c['seconds']:.1f} s: {c['teacher_forwards']['texts']:,} texts in "
              f"{c['teacher_forwards']['calls']:,} teacher passes, peak RSS {c['peak_memory_mb']['rss']} MB")
    return caches, failed


def progress(index: int, total: int, run: MethodRun, result: dict) -> str:
    """The line printed when a method is done."""
    row = method_row(run.name, result, None)
    scores = " ".join(f"{split} {row['scores'][split]['mean']:.2f}" for split in ("validation", "test") if row["scores"].get(split))
    forwards = row["teacher_forwards"]["training"]
    return (f"[{index}/{total}] {run.name}: training {row['seconds']['training']:.1f} s ({row['steps']} steps, median "
            f"{row['median_step_s']} s/step), evaluation {row['seconds']['evaluation']:.1f} s; {forwards['calls']:,} teacher "
            f"passes in training; peak RSS {row['peak_memory_mb']['rss']} MB; {scores}")


def compare(runs: list[MethodRun], out: str, evaluation: dict, command: list[str]) -> int:
    """Build the shared caches, run the methods that are not finished, report; ``evaluation``: task file and task names."""
    done = finished(runs, evaluation)
    caches, failed_caches = build_caches(runs, done, out)
    failed = []
    for index, run in enumerate(runs, start=1):
        if run.name in done:
            logger.info(f"[{index}/{len(runs)}] {run.name}: already done ({run.result}); not rerun")
            continue
        if run.cache_id in failed_caches:
            failed.append(run.name)
            continue
        logger.info(f"[{index}/{len(runs)}] {run.name}: training and scoring (log: {run.log})")
        status, _ = run_worker("train", run.argv, run.result, run.log, evaluation)
        result = read_json(run.result) if status == 0 else None
        if result is None:
            failed.append(run.name)
            logger.info(f"[{index}/{len(runs)}] {run.name}: FAILED (exit status {status}). Last lines of {run.log}:\n{log_tail(run.log)}")
            continue
        done[run.name] = result
        logger.info(progress(index, len(runs), run, result))
        fault("compare_method_done", index)  # tests: a comparison killed here resumes without rerunning this method
    if done:
        table = write_report(out, command, runs, done, caches)
        logger.info(table)
        logger.info(f"wrote {os.path.join(out, 'comparison.json')}, comparison.md and plots/")
    if failed:
        raise TalasError(f"{len(failed)} method(s) did not finish: {', '.join(failed)} (see their logs under "
                         f"{os.path.join(out, 'logs')}). Rerun the same command to retry them; finished methods are not rerun.")
    return 0
