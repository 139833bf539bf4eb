"""Run folders and resumable checkpoints for the loop in talas/train/loop.py:
`talas train ... --save_dir D` (a fresh run), `--resume latest` (continue it), `--overwrite` (replace it).

    <save_dir>/run.json, config.json   the run's id and data fingerprint; its resolved config. Written
                                       (atomically) once the run is set up, so they never describe a run
                                       that failed to start.
    <save_dir>/checkpoints/[<stage>/]step-N/
        training_state.pt              weights, optimiser, scheduler, stage/epoch/batch position, best score
        rng-<rank>.pt                  each process's RNG state (python, torch, CUDA)
        checkpoint.json                run id, stage index, step, the config and data it was trained with;
                                       written last inside step-N.tmp, which is then renamed: a folder
                                       without it (or a .tmp one) is never taken as a checkpoint.
    <save_dir>/model/, best_model/, train_log.jsonl, eval_log.jsonl, eval_final.json
    <save_dir>/run_summary.json        what the run measured (talas/train/meter.py), written last

A fresh run refuses a folder that holds checkpoints or an exported student (resume it, pass
--overwrite, or choose another folder). --overwrite moves the earlier run's outputs to
<save_dir>/replaced/<time>/ and never deletes them: a mistyped flag must not cost a week of training.
--resume compares the checkpoint's config and data fingerprint with this run's and names every
difference that changes training (options marked ``bookkeeping`` may differ). Rotation
(--save_total_limit) deletes only checkpoints that carry this run's id.

Why not Accelerate's save_state/load_state: (1) it restores a scheduler only when Accelerate prepared
it, and a prepared scheduler steps once per process per optimiser step, which is not our schedule;
(2) when it cannot load a process's RNG state it logs and goes on, silently breaking an exact resume;
(3) the run id, data position, stage and config must sit next to the weights anyway, in a folder
that appears only when complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import random
import re
import shutil
import time
import uuid
from typing import Any, NamedTuple

import torch

from talas.config import config_dict, save_config
from talas.errors import ConfigError, TrainingError
from talas.faults import fault, fault_enospc

RUN_FILE = "run.json"
STATE_FILE = "training_state.pt"
RECORD_FILE = "checkpoint.json"
# What a run writes into its save_dir: what --overwrite moves aside (nothing else in the folder is touched).
RUN_OUTPUTS = ("checkpoints", "model", "best_model", "config.json", RUN_FILE, "train_log.jsonl", "eval_log.jsonl", "eval_final.json",
               "run_summary.json")
STEP_FOLDER = re.compile(r"step-(\d+)")

logger = logging.getLogger(__name__)


class Checkpoint(NamedTuple):
    folder: str
    record: dict


def write_json(path: str, value: Any) -> None:
    """Write through a temporary file and rename: readers see the old file or the whole new one."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def save_synced(obj: Any, path: str) -> None:
    """torch.save, flushed to disk before the folder holding it is renamed into place."""
    with open(path, "wb") as handle:
        torch.save(obj, handle)
        handle.flush()
        os.fsync(handle.fileno())


def data_fingerprint(data) -> dict:
    """Row count and a hash of the ordered (anchor, positive, negative) rows: what the data order indexes."""
    digest = hashlib.sha256()
    rows = list(zip(data.anchors, data.positives, data.negatives, strict=True))
    for start in range(0, len(rows), 65536):  # joined in blocks: one update per row is 10x slower
        block = "\x1e".join("\x1f".join((a, p, n or "")) for a, p, n in rows[start : start + 65536])
        digest.update(block.encode("utf-8", "surrogatepass") + b"\x1d")
    return {"rows": len(rows), "sha256": digest.hexdigest()}


def rng_state() -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def prepare_save_dir(path: str) -> None:
    """Create --save_dir now, so a folder that cannot exist fails before any work is done."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        parent = path  # the nearest part of the path that exists, as the user wrote it
        while parent and not os.path.exists(parent):
            parent = os.path.dirname(parent.rstrip("/\\"))
        parent = parent or "."
        why = f"{parent!r} is a file, not a folder" if os.path.isfile(parent) else f"{exc.strerror} (in {parent!r})"
        raise ConfigError(f"--save_dir {path!r} cannot be created: {why}. Choose a folder you can write to.") from None
    if not os.access(path, os.W_OK):
        raise ConfigError(f"--save_dir {path!r} is not writable. Choose a folder you can write to.")


def read_record(folder: str) -> dict | None:
    try:
        with open(os.path.join(folder, RECORD_FILE), encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def stage_checkpoints(root: str) -> list[Checkpoint]:
    """The complete checkpoints directly under ``root``, oldest step first."""
    names = os.listdir(root) if os.path.isdir(root) else []
    found = []
    for name in names:
        match = STEP_FOLDER.fullmatch(name)
        record = read_record(os.path.join(root, name)) if match else None
        if record is not None:
            found.append((int(match.group(1)), Checkpoint(os.path.join(root, name), record)))
    return [c for _, c in sorted(found, key=lambda pair: pair[0])]


def list_checkpoints(save_dir: str) -> list[Checkpoint]:
    """Every complete checkpoint of the folder, in training order (stage, then step)."""
    root = os.path.join(save_dir, "checkpoints")
    stages = [os.path.join(root, d) for d in sorted(os.listdir(root)) if not STEP_FOLDER.fullmatch(d)] if os.path.isdir(root) else []
    found = [c for folder in (root, *stages) for c in stage_checkpoints(folder)]
    return sorted(found, key=lambda c: (c.record.get("stage_index", 0), c.record.get("step", 0)))


def earlier_run(save_dir: str) -> list[str]:
    """What of an earlier run the folder holds that a fresh run would mix with or replace."""
    found = []
    checkpoints = list_checkpoints(save_dir)
    if checkpoints:
        found.append(f"{len(checkpoints)} checkpoint(s), the latest {os.path.relpath(checkpoints[-1].folder, save_dir)}")
    found += [f"an exported student in {name}/" for name in ("model", "best_model") if os.path.isdir(os.path.join(save_dir, name))]
    return found


def move_aside(save_dir: str) -> str:
    """Move an earlier run's outputs to <save_dir>/replaced/<time>/ (same file system: renames, no copies)."""
    target = os.path.join(save_dir, "replaced", time.strftime("%Y%m%d-%H%M%S"))
    while os.path.exists(target):
        target += "_"
    os.makedirs(target)
    for name in RUN_OUTPUTS:
        if os.path.exists(os.path.join(save_dir, name)):
            os.replace(os.path.join(save_dir, name), os.path.join(target, name))
    return target


def keep_old_logs(save_dir: str) -> None:
    """A fresh run starts fresh logs; an earlier (failed) run's logs are kept under a timestamped name."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name in ("train_log.jsonl", "eval_log.jsonl"):
        path = os.path.join(save_dir, name)
        if os.path.exists(path):
            os.replace(path, os.path.join(save_dir, f"{name[:-6]}.{stamp}.jsonl"))


def same_model(a: Any, b: Any) -> bool:
    """Model names equal as paths when both are local folders ('m/' and './m' are the same model)."""
    if isinstance(a, str) and isinstance(b, str) and os.path.isdir(a) and os.path.isdir(b):
        return os.path.realpath(a) == os.path.realpath(b)
    return a == b


def differences(record: dict, cfg, fingerprint: dict, processes: int) -> list[str]:
    """Every difference between a checkpoint's run and this one that changes what is trained."""
    recorded = record.get("config", {})
    current = json.loads(json.dumps(config_dict(cfg)))  # the types the record has after its JSON round trip
    found = []
    for f in dataclasses.fields(cfg):
        if f.metadata.get("bookkeeping") or f.name == "train_data_path" or f.name not in recorded:
            continue  # the data is compared by content below, wherever the file now lives
        old, new = recorded[f.name], current[f.name]
        if old != new and not (f.name.endswith("_model_name") and same_model(old, new)):
            found.append(f"{f.name} {old!r} → {new!r}")
    data = record.get("data")
    if data is not None and data != fingerprint:
        what = f"{data['rows']} → {fingerprint['rows']} rows" if data["rows"] != fingerprint["rows"] else "same row count, other texts or order"
        found.append(f"training data {recorded.get('train_data_path')!r} → {cfg.train_data_path!r} ({what})")
    if record.get("processes", processes) != processes:
        found.append(f"processes {record['processes']} → {processes} (each process takes its share of the batches)")
    return found


class RunFolder:
    """One run's view of its --save_dir: claim it, record it, save and read its checkpoints.

    Methods that touch files shared by all processes write on the main process only; ``save``
    has every process write its own RNG state.
    """

    def __init__(self, cfg, acc):
        self.cfg, self.acc = cfg, acc
        self.run_id = uuid.uuid4().hex[:12]
        self.fingerprint: dict | None = None
        self.resumed: Checkpoint | None = None

    def claim(self) -> None:
        """Before anything heavy: the folder can be written, and holds no run this one would mix with."""
        cfg = self.cfg
        prepare_save_dir(cfg.save_dir)
        if cfg.resume:
            self.resumed = self.find_resume()
            return
        found = earlier_run(cfg.save_dir)
        if found and not cfg.overwrite:
            raise ConfigError(
                f"--save_dir {cfg.save_dir!r} holds an earlier run ({'; '.join(found)}). Continue it with --resume latest, "
                f"replace it with --overwrite (its outputs move to {os.path.join(cfg.save_dir, 'replaced')}/), or choose another --save_dir."
            )

    def find_resume(self) -> Checkpoint:
        cfg = self.cfg
        if cfg.resume == "latest":
            found = list_checkpoints(cfg.save_dir)
            if not found:
                raise ConfigError(f"--resume latest: no checkpoint found under {os.path.join(cfg.save_dir, 'checkpoints')}. Train without --resume first.")
            return found[-1]
        folder = cfg.resume.rstrip("/\\") or cfg.resume
        record = read_record(folder)
        if record is None:
            raise ConfigError(
                f"--resume {cfg.resume!r}: {os.path.join(folder, RECORD_FILE)} does not exist, so this is not a complete checkpoint. "
                "Pass a checkpoint folder (<save_dir>/checkpoints/[<stage>/]step-N) or 'latest'."
            )
        return Checkpoint(folder, record)

    def match(self, data) -> None:
        """Fingerprint the data; when resuming, refuse a checkpoint trained with other settings or data."""
        self.fingerprint = data_fingerprint(data)
        if self.resumed is None:
            return
        found = differences(self.resumed.record, self.cfg, self.fingerprint, self.acc.num_processes)
        if found:
            raise ConfigError(
                f"--resume {self.resumed.folder}: this run differs from the checkpoint's: {'; '.join(found)}. "
                "Resume with the checkpoint's settings, or start a fresh run (--overwrite, or another --save_dir)."
            )
        self.run_id = self.resumed.record.get("run_id", self.run_id)

    def start(self) -> None:
        """The run is set up: move an overwritten run aside, then write run.json and config.json."""
        cfg, acc = self.cfg, self.acc
        if acc.is_main_process:
            if cfg.overwrite and earlier_run(cfg.save_dir):
                logger.info(f"--overwrite: moved the earlier run's outputs to {move_aside(cfg.save_dir)}")
            elif not cfg.resume:
                keep_old_logs(cfg.save_dir)
            write_json(os.path.join(cfg.save_dir, RUN_FILE), {"run_id": self.run_id, "data": self.fingerprint, "processes": acc.num_processes})
            save_config(cfg, cfg.save_dir)
        acc.wait_for_everyone()

    def load(self, stage_names: list[str]) -> dict:
        """The resumed checkpoint's training state, with this process's RNG state under "rng"."""
        folder = self.resumed.folder
        saved = torch.load(os.path.join(folder, STATE_FILE), map_location="cpu", weights_only=True)
        rng_file = os.path.join(folder, f"rng-{self.acc.process_index}.pt")
        if not os.path.isfile(rng_file):
            raise ConfigError(f"--resume {folder}: {rng_file} is missing; the checkpoint is incomplete. Resume from an earlier one.")
        saved["rng"] = torch.load(rng_file, weights_only=True)
        stage = saved["state"].get("stage", "")
        if stage not in stage_names:
            raise ConfigError(f"--resume {folder}: it was saved in stage {stage!r}, which this run does not have ({', '.join(map(repr, stage_names))}).")
        logger.info(f"Resumed from {folder} ({f'stage {stage}, ' if stage else ''}optimiser step {saved['state']['step']}).")
        return saved

    def save(self, model_state: dict, optimizer, scheduler, state: dict, stage_index: int, best_score: float) -> None:
        """Write checkpoint step-N of the current stage: into step-N.tmp, then renamed (call on every process)."""
        cfg, acc = self.cfg, self.acc
        root = os.path.join(cfg.save_dir, "checkpoints", state["stage"])
        folder = os.path.join(root, f"step-{state['step']}")
        tmp = folder + ".tmp"
        try:
            if acc.is_main_process:
                shutil.rmtree(tmp, ignore_errors=True)
                os.makedirs(tmp)
            acc.wait_for_everyone()
            save_synced(rng_state(), os.path.join(tmp, f"rng-{acc.process_index}.pt"))
            acc.wait_for_everyone()
            if acc.is_main_process:
                save_synced({"model": model_state, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                             "state": dict(state), "best_score": best_score}, os.path.join(tmp, STATE_FILE))
                fault("checkpoint", state["step"])  # killed with the state file written, not yet the record
                fault_enospc("checkpoint_enospc", state["step"])
                record = {"run_id": self.run_id, "stage": state["stage"], "stage_index": stage_index, "step": state["step"],
                          "processes": acc.num_processes, "data": self.fingerprint, "config": config_dict(cfg)}
                write_json(os.path.join(tmp, RECORD_FILE), record)
                shutil.rmtree(folder, ignore_errors=True)
                os.replace(tmp, folder)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            done = stage_checkpoints(root)
            last = done[-1].folder if done else "none"
            raise TrainingError(
                f"Cannot write checkpoint {folder}: {exc.strerror or exc}. Nothing of it is kept; the last complete "
                f"checkpoint is {last}. Free space under {root} (or lower --save_total_limit), then continue with --resume latest."
            ) from exc
        if acc.is_main_process:
            self.rotate(root)

    def rotate(self, root: str) -> None:
        """Keep this run's newest --save_total_limit checkpoints of the stage; never touch another run's."""
        limit = self.cfg.save_total_limit
        ours = [c for c in stage_checkpoints(root) if c.record.get("run_id") == self.run_id]
        for old in ours[:-limit] if limit else []:
            os.remove(os.path.join(old.folder, RECORD_FILE))  # first: a half-deleted folder is no checkpoint
            shutil.rmtree(old.folder, ignore_errors=True)
