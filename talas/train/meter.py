"""What one training run measured about itself: ``<save_dir>/run_summary.json``, written last by the loop.

    {"teacher_forwards": {"training": {"calls": 600, "texts": 38400}, "cache_build": {"calls": 0, "texts": 0}},
     "seconds": {"setup": 4.1, "teacher": 0.2, "train": 512.3, "export": 1.0, "total": 517.6},
     "steps": 600, "median_step_s": 0.84, "trainable_params": 22713216, "trainable_params_by_stage": {...},
     "peak_memory_mb": {"rss": 1843, "cuda_allocated": null, "cuda_reserved": null}, "resumed": false}

Teacher forward passes are counted, not assumed: a forward hook on the online teacher's model
counts every pass the loop makes during training (``calls``) and the texts in them (``texts``), and
while the teacher supply is set up (cache check or build) a global hook counts every pass of a
talas ``Encoder`` (only the teacher runs then: the student is not loaded yet). A run that reads a
valid cache therefore reports 0 and 0. ``setup`` is options, data and model checks; ``teacher`` the
cache check/build and loading an online teacher; ``train`` every stage (checkpoints and in-loop
validation included); ``export`` the exported folder and the final evaluation. ``median_step_s``:
median time of an optimiser step (data loading, online teacher, forward, backward, update; not
checkpoints or validation). Peak memory is the process's: RSS high-water mark (a process that ran
something before this run reports that too) and, on CUDA, the peak allocated/reserved since the
run started. Counts are per process (under DDP: rank 0's).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from collections.abc import Iterator

import torch

SUMMARY_FILE = "run_summary.json"


def rows_of(value) -> int:
    """Batch size of a model input: a tensor's first dimension, or a features dict's input_ids."""
    if isinstance(value, dict):
        value = value.get("input_ids")
    return int(value.shape[0]) if hasattr(value, "shape") and len(value.shape) else 0


class ForwardCount:
    """Forward passes and the texts in them; ``hook`` fits ``register_forward_hook(..., with_kwargs=True)``."""

    def __init__(self):
        self.calls = 0
        self.texts = 0

    def hook(self, module, args, kwargs, output) -> None:
        self.calls += 1
        self.texts += rows_of(kwargs["input_ids"] if "input_ids" in kwargs else args[0] if args else None)

    def as_dict(self) -> dict:
        return {"calls": self.calls, "texts": self.texts}


@contextlib.contextmanager
def counting_encoder_forwards() -> Iterator[ForwardCount]:
    """Count every talas Encoder forward pass inside the block (the cache build's teacher)."""
    from talas.models.encoder import Encoder

    count = ForwardCount()

    def hook(module, args, kwargs, output):
        if isinstance(module, Encoder):
            count.hook(module, args, kwargs, output)

    handle = torch.nn.modules.module.register_module_forward_hook(hook, with_kwargs=True)
    try:
        yield count
    finally:
        handle.remove()


def peak_rss_mb() -> float | None:
    """This process's peak resident memory in MB (None where the platform does not report it)."""
    try:
        import resource
    except ImportError:  # Windows: the peak working set is the same idea
        import psutil

        peak = getattr(psutil.Process().memory_info(), "peak_wset", None)
        return None if peak is None else peak / 2**20
    # Linux reports KiB, macOS bytes.
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


class RunMeter:
    """Collects the figures of run_summary.json while the loop runs."""

    def __init__(self, device: torch.device):
        self.device = device
        self.began = time.perf_counter()
        self.seconds: dict[str, float] = {}
        self.step_seconds: list[float] = []
        self.training = ForwardCount()
        self.cache_build = ForwardCount()
        self.trainable_by_stage: dict[str, int] = {}
        self.trainable_ids: set[int] = set()
        self.trainable_total = 0
        self.handles = []
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def watch_teacher(self, model: torch.nn.Module) -> None:
        """Count the forward passes of the online teacher's model from now on."""
        self.handles.append(model.register_forward_hook(self.training.hook, with_kwargs=True))

    def stage_started(self, name: str, method: torch.nn.Module) -> None:
        """Record the stage's trainable parameters (and those trained in any stage, each counted once)."""
        params = [p for p in method.parameters() if p.requires_grad]
        self.trainable_by_stage[name] = sum(p.numel() for p in params)
        for p in params:
            if id(p) not in self.trainable_ids:
                self.trainable_ids.add(id(p))
                self.trainable_total += p.numel()

    def step_done(self, seconds: float) -> None:
        self.step_seconds.append(seconds)

    def peak_memory(self) -> dict:
        cuda = self.device.type == "cuda"
        rss = peak_rss_mb()
        return {
            "rss": None if rss is None else round(rss),
            "cuda_allocated": round(torch.cuda.max_memory_allocated(self.device) / 2**20) if cuda else None,
            "cuda_reserved": round(torch.cuda.max_memory_reserved(self.device) / 2**20) if cuda else None,
        }

    def summary(self, resumed: bool) -> dict:
        for handle in self.handles:
            handle.remove()
        self.handles = []
        seconds = {name: round(value, 3) for name, value in self.seconds.items()}
        seconds["total"] = round(time.perf_counter() - self.began, 3)
        return {
            "teacher_forwards": {"training": self.training.as_dict(), "cache_build": self.cache_build.as_dict()},
            "seconds": seconds,
            "steps": len(self.step_seconds),
            "median_step_s": round(statistics.median(self.step_seconds), 4) if self.step_seconds else None,
            "trainable_params": self.trainable_total,
            "trainable_params_by_stage": self.trainable_by_stage,
            "peak_memory_mb": self.peak_memory(),
            "device": str(self.device),
            "resumed": resumed,
            "pid": os.getpid(),
        }
