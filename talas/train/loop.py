"""The training loop, method-agnostic: `talas train ...` or `python main.py --method talas ...`.

data → teacher vectors (cache or online) → method module (student + extras) → AdamW with linear
warm-up and cosine/linear/constant decay → checkpoints you can resume → sentence-transformers
export. Runs single-process or under ``accelerate launch``/``torchrun`` (DDP via Accelerate).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import time
from collections.abc import Iterator

import torch

from talas.cache.build import rank_logger
from talas.config import check_options, format_config
from talas.data.batch import to_device
from talas.data.examples import load_from_config
from talas.errors import TrainingError
from talas.faults import fault, faulted
from talas.methods import get_method
from talas.methods.base import Method, Stage
from talas.models.teacher import pick_device
from talas.teacher.provision import Prepared, provide
from talas.train import setup
from talas.train.batching import epoch_batches
from talas.train.checkpoint import RunFolder, list_checkpoints, set_rng_state, write_json
from talas.train.meter import SUMMARY_FILE, RunMeter, counting_encoder_forwards

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def main_process_logs(acc) -> Iterator[None]:
    """Other processes log warnings only while the block runs, so each message appears once (rank 0's);
    the per-rank channel (what each process did) stays as verbose as the rest was."""
    root, per_rank = logging.getLogger("talas"), rank_logger
    levels = root.level, per_rank.level
    if not acc.is_main_process:
        per_rank.setLevel(root.getEffectiveLevel())
        root.setLevel(max(logging.WARNING, root.getEffectiveLevel()))
    try:
        yield
    finally:
        root.setLevel(levels[0])
        per_rank.setLevel(levels[1])


class Trainer:
    """One training run of ``cfg``: the set-up steps of ``run`` (talas.train.setup), then each stage's loop."""

    def __init__(self, cfg):
        from accelerate import Accelerator

        self.cfg = cfg
        device = pick_device(cfg.device)
        bf16 = cfg.mixed_precision == "bf16" or (cfg.mixed_precision == "auto" and device.type == "cuda")
        self.acc = Accelerator(cpu=device.type == "cpu", mixed_precision="bf16" if bf16 else "no")

    def run(self) -> str:
        with main_process_logs(self.acc):
            cfg, acc = self.cfg, self.acc
            self.meter = RunMeter(acc.device)
            method_cls = self.claim_run()
            data = self.load_data(method_cls)
            needs = method_cls.teacher_needs(cfg)
            self.meter.seconds["setup"] = time.perf_counter() - self.meter.began
            supply = self.provide_teacher(needs, data)
            student = setup.load_student(cfg, needs)
            method = method_cls(cfg, student, supply.dim)
            prepared = setup.prepared(cfg, data.unique_texts(), student, supply, acc.device)
            collate, self.lengths, per_epoch = setup.batches(cfg, acc, method_cls, data, student, supply,
                                                             method_cls.aligners(cfg, prepared))
            if supply.online is not None:
                # From here on: what a method prepares before training (CDM's weight pass) is not a training pass.
                self.meter.watch_teacher(supply.online.encoder.model)
            setup.seed_process(cfg.seed, acc.process_index)
            stages = method.stages()
            saved, first = self.resume_or_initialise(method, stages, prepared)
            with self.meter.phase("train"):
                self.train_stages(method, stages, first, saved, collate, supply, per_epoch, len(data))
            self.resumed = saved is not None
            return self.finish(method)

    def claim_run(self) -> type[Method]:
        """Options, run folder and seeds; the eval tasks are loaded now so a wrong name fails before hours of training."""
        cfg = self.cfg
        check_options(cfg)  # resolve_config checked the command line; this covers configs built in code
        method_cls = get_method(cfg.method)
        method_cls.validate(cfg)
        self.folder = RunFolder(cfg, self.acc)
        self.folder.claim()
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        logger.info("Resolved configuration:\n" + format_config(cfg))
        self.eval_tasks = None
        if cfg.eval_tasks:
            from talas.eval.task_file import load_tasks

            self.eval_tasks = load_tasks(cfg.eval_task_file or None, [t.strip() for t in cfg.eval_tasks.split(",") if t.strip()])
        self.best_score = float("-inf")
        return method_cls

    def load_data(self, method_cls: type[Method]):
        """The training data, checked with the models' configs and against a resumed run's."""
        cfg = self.cfg
        logger.info(f"Loading training data from: {cfg.train_data_path}")
        data = load_from_config(cfg)
        if data.skipped:
            logger.warning(f"Warning: skipped {data.skipped} bad row(s) of {cfg.train_data_path} (--skip_bad_rows).")
        setup.check_models(cfg, method_cls, data)
        self.folder.match(data)  # a --resume with other settings or data fails before the cache is built
        return data

    def provide_teacher(self, needs, data):
        """The teacher cache (built if missing) and/or the online teacher, as the method declared."""
        with self.meter.phase("teacher"), counting_encoder_forwards() as built:
            supply = provide(self.cfg, needs, data.unique_texts(), data.anchors, self.acc.device)
        self.meter.cache_build = built
        return supply

    def resume_or_initialise(self, method: Method, stages: list[Stage], prepared: Prepared) -> tuple[dict | None, int]:
        """Write the run folder's records; then the resumed checkpoint's weights (and its stage index), or
        the method's fresh start."""
        cfg = self.cfg
        self.folder.start()
        saved = self.folder.load([s.name for s in stages]) if cfg.resume else None
        if saved is None:
            method.initialise(prepared)
            return None, 0
        method.load_state_dict(saved["model"])
        self.best_score = saved.get("best_score", self.best_score)
        return saved, [s.name for s in stages].index(saved["state"].get("stage", ""))

    def train_stages(self, method, stages: list[Stage], first: int, saved: dict | None, collate, supply, per_epoch: int, n: int) -> None:
        cfg, acc = self.cfg, self.acc
        for index in range(first, len(stages)):
            stage = stages[index]
            self.stage_index = index
            # Trainable set first: the optimiser and (under DDP) the wrapper take only parameters
            # that require grad, so both are rebuilt for every stage.
            method.start_stage(stage)
            self.meter.stage_started(stage.name, method)
            optimizer, scheduler, total, epochs = setup.optimiser(cfg, method, stage, per_epoch)
            model, optimizer = acc.prepare(method, optimizer)
            state = {"stage": stage.name, "step": 0, "epoch": 0, "batch_in_epoch": 0}
            if saved is not None and index == first:
                optimizer.load_state_dict(saved["optimizer"])
                scheduler.load_state_dict(saved["scheduler"])
                set_rng_state(saved["rng"])
                state.update(saved["state"])
            if len(stages) > 1:
                count = sum(p.numel() for p in method.parameters() if p.requires_grad)
                logger.info(f"Stage {index + 1}/{len(stages)} ({stage.name}): {count:,} trainable parameters, lr {stage.learning_rate:g}, {total} steps")
            self.train_loop(model, optimizer, scheduler, collate, supply, state, total, epochs, n, stage, cfg.seed + index)
            # A finished stage is always on disk before the next begins, so a crash there never repeats it.
            saved_here = state["step"] % cfg.save_steps == 0 if cfg.save_steps else state["batch_in_epoch"] == 0
            if index + 1 < len(stages) and not saved_here:
                self.save_checkpoint(model, optimizer, scheduler, state)

    def train_loop(self, model, optimizer, scheduler, collate, supply, state, total, epochs, n, stage: Stage, seed: int) -> None:
        """One stage. Each stage draws its own data order (``seed``: the run's seed + the stage index)."""
        from tqdm.auto import tqdm

        cfg, acc = self.cfg, self.acc
        log_path = os.path.join(cfg.save_dir, "train_log.jsonl")
        began = time.perf_counter()
        accum = cfg.grad_accum_steps
        model.train()
        for epoch in range(state["epoch"], epochs):
            if state["step"] >= total:
                break
            batches = epoch_batches(n, cfg.batch_size, seed, epoch, acc.process_index, acc.num_processes, self.lengths)
            start = state["batch_in_epoch"] if epoch == state["epoch"] else 0
            # Stop exactly at the step budget (--max_steps) without breaking out of the loader.
            stop = min(len(batches), start + (total - state["step"]) * accum)
            # A private generator: the loader would otherwise draw its worker seed from the global RNG,
            # shifting the dropout stream of a resumed run.
            loader = torch.utils.data.DataLoader(
                batches[start:stop], batch_size=None, collate_fn=collate, num_workers=cfg.num_workers,
                generator=torch.Generator().manual_seed(seed + epoch),
            )
            label = f"{stage.name} epoch" if stage.name else "Epoch"
            bar = tqdm(loader, desc=f"{label} {epoch + 1}/{epochs}", total=len(batches), initial=start,
                       disable=not acc.is_main_process, dynamic_ncols=True)
            sums: dict[str, float] = {}
            count = 0
            bad_loss = None  # a non-finite loss seen since the last optimiser step
            step_began = time.perf_counter()  # step time: batch loading to update, not checkpoints or validation
            for offset, batch in enumerate(bar, start=start):
                batch = to_device(batch, acc.device)
                supply.fill(batch)  # online teacher outputs, when the method declared any
                boundary = (offset + 1) % accum == 0 or offset + 1 == stop
                sync = contextlib.nullcontext() if boundary else acc.no_sync(model)
                with sync, acc.autocast():
                    loss, metrics = model(batch)
                    if faulted("nan_loss", state["step"] + 1):
                        loss = loss * math.nan
                    acc.backward(loss / accum)
                for key, value in metrics.items():
                    sums[key] = sums.get(key, 0.0) + float(value)
                count += 1
                if not math.isfinite(float(loss.detach())):
                    bad_loss = float(loss.detach())
                bar.set_postfix(avg_loss=f"{sums['loss'] / count:.4f}")
                if not boundary:
                    continue
                self.check_finite(model, bad_loss, state, stage)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                self.meter.step_done(time.perf_counter() - step_began)
                state.update(step=state["step"] + 1, epoch=epoch, batch_in_epoch=offset + 1)
                fault("train_step", state["step"])
                if acc.is_main_process and (state["step"] % cfg.log_steps == 0 or state["step"] == total):
                    record = {**({"stage": stage.name} if stage.name else {}), "step": state["step"], "epoch": epoch + 1,
                              "lr": scheduler.get_last_lr()[0], **{k: float(v) for k, v in metrics.items()},
                              "avg_loss": sums["loss"] / count, "elapsed_s": round(time.perf_counter() - began, 2)}
                    with open(log_path, "a", encoding="utf-8") as handle:
                        handle.write(json.dumps(record) + "\n")
                if cfg.save_steps and state["step"] % cfg.save_steps == 0:
                    self.save_checkpoint(model, optimizer, scheduler, state)
                step_began = time.perf_counter()
            bar.close()
            if state["batch_in_epoch"] >= len(batches):
                state.update(epoch=epoch + 1, batch_in_epoch=0)
                # Validation first, so the checkpoint holds the best score it produced.
                self.validate(model, epoch + 1, state["step"])
                if not cfg.save_steps:
                    self.save_checkpoint(model, optimizer, scheduler, state)

    def check_finite(self, model, bad_loss: float | None, state: dict, stage: Stage) -> None:
        """Before the optimiser step: stop on a non-finite loss or gradient norm, so no weight ever takes it.

        All processes decide together (one of them seeing a NaN must not leave the others waiting).
        """
        cfg, acc = self.cfg, self.acc
        params = [p for p in model.parameters() if p.grad is not None]
        if cfg.max_grad_norm > 0:
            norm = float(acc.clip_grad_norm_(params, cfg.max_grad_norm))
        else:  # under DDP the gradients are already averaged across processes: the local norm is the global one
            norm = float(torch.nn.utils.get_total_norm([p.grad for p in params])) if params else 0.0
        bad = bad_loss is not None or not math.isfinite(norm)
        if acc.num_processes > 1:
            bad = bool(acc.reduce(torch.tensor(float(bad), device=acc.device), "sum").item())
        if not bad:
            return
        mine = [c.folder for c in list_checkpoints(cfg.save_dir) if c.record.get("run_id") == self.folder.run_id]
        kept = f"the last checkpoint, {mine[-1]}, is kept (--resume latest continues from it)" if mine else "no checkpoint was written"
        where = f"step {state['step'] + 1}" + (f" of {stage.name}" if stage.name else "")
        if bad_loss is not None:
            loss = f"loss {bad_loss}"
        else:
            loss = "loss finite" if not math.isfinite(norm) else "a non-finite loss on another process"
        raise TrainingError(
            f"Training stopped at {where}: {loss}, gradient norm {norm:g}. Likely causes: --learning_rate "
            f"{stage.learning_rate:g} too high, --temperature {cfg.temperature:g} too small, or non-finite teacher vectors "
            f"(a corrupted cache: delete it to rebuild). No weight took this step; {kept}; no model was exported."
        )

    def validate(self, model, epoch: int, step: int) -> None:
        """Score --eval_tasks on their validation splits; keep the best student as best_model/."""
        if self.eval_tasks is None or not self.acc.is_main_process:
            return
        from talas.eval.evaluate import evaluate
        from talas.models.export import export_student

        method = self.acc.unwrap_model(model)
        result = evaluate(method.embed, self.eval_tasks, split="validation", progress=False)
        score = result["averages"]["overall"]
        scores = {name: round(r[r["main_score"]], 2) for name, r in result["tasks"].items()}
        logger.info(f"Validation after epoch {epoch}: {scores} (mean {score:.2f})")
        with open(os.path.join(self.cfg.save_dir, "eval_log.jsonl"), "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"epoch": epoch, "step": step, "mean": score, "tasks": scores}) + "\n")
        if score > self.best_score:
            self.best_score = score
            export_student(method, os.path.join(self.cfg.save_dir, "best_model"), self.cfg, method.export_modules())
            logger.info(f"New best validation score; saved {os.path.join(self.cfg.save_dir, 'best_model')}")

    def save_checkpoint(self, model, optimizer, scheduler, state: dict) -> None:
        """Everything needed to continue bit-for-bit: weights, optimiser, schedule, RNG, stage, data position, best score."""
        state_dict = self.acc.unwrap_model(model).state_dict() if self.acc.is_main_process else {}
        self.folder.save(state_dict, optimizer, scheduler, state, self.stage_index, self.best_score)

    def finish(self, method) -> str:
        from talas.models.export import export_student

        acc, cfg = self.acc, self.cfg
        bad = [name for name, t in method.state_dict().items() if t.is_floating_point() and not torch.isfinite(t).all()]
        if bad:  # the loop's guard stops NaN steps; this catches anything else (e.g. a checkpoint edited by hand)
            raise TrainingError(f"The trained weights hold non-finite values ({len(bad)} tensor(s), e.g. {bad[0]}); the student is not exported. Resume from an earlier checkpoint with a lower --learning_rate.")
        acc.wait_for_everyone()
        out = os.path.join(cfg.save_dir, "model")
        if acc.is_main_process:
            with self.meter.phase("export"):
                export_student(method, out, cfg, method.export_modules())
                logger.info(f"Saved the student (sentence-transformers format) to {out}")
                if self.eval_tasks is not None:
                    self.final_evaluation(method)
            # Last, so a run folder with a summary is a finished run.
            write_json(os.path.join(cfg.save_dir, SUMMARY_FILE), self.meter.summary(self.resumed))
        acc.wait_for_everyone()
        return out

    def final_evaluation(self, method) -> None:
        """The full suite (test splits) on the final student, written next to it."""
        from talas.eval.evaluate import evaluate
        from talas.eval.task_file import load_tasks

        result = evaluate(method.embed, load_tasks(self.cfg.eval_task_file or None), split="test")
        path = os.path.join(self.cfg.save_dir, "eval_final.json")
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)
        logger.info(f"Final model, test splits: {json.dumps({k: round(v, 2) for k, v in result['averages'].items()})} → {path}")


def train(cfg) -> str:
    """Train with ``cfg`` and return the exported student's folder."""
    return Trainer(cfg).run()
