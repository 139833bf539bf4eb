"""The outputs of `talas compare` from its per-method results: comparison.json, comparison.md
(the seed's table, teacher inference / memory / speed, now measured, plus quality) and plots."""

from __future__ import annotations

import json
import os
import platform
import time

from talas.train.checkpoint import write_json

#: What every method of a comparison must share: the data, the models and the budget (reported once).
SHARED = ("train_data_path", "max_train_samples", "teacher_model_name", "student_model_name", "student_num_layers", "student_layers",
          "max_length", "batch_size", "grad_accum_steps", "epochs", "max_steps", "seed", "device")
PLOTS = ("scores", "loss", "time", "memory")
MEMORY_LABELS = {"rss": "peak RSS", "cuda_allocated": "CUDA peak allocated", "cuda_reserved": "CUDA peak reserved"}


def method_row(name: str, result: dict, cache: dict | None) -> dict:
    """One method's figures. A cache its own process had to build (another key than the shared
    one) counts as cache build, not training; the shared build is counted for every method reading it."""
    summary = result["summary"]
    forwards = summary["teacher_forwards"]
    own_build = summary["seconds"].get("teacher", 0.0) if forwards["cache_build"]["calls"] else 0.0
    shared = cache["seconds"] if cache else 0.0
    build_forwards = {key: forwards["cache_build"][key] + (cache["teacher_forwards"][key] if cache else 0) for key in ("calls", "texts")}
    return {
        "method": name,
        "reads_cache": cache is not None or bool(forwards["cache_build"]["calls"]),
        "teacher_forwards": {"training": forwards["training"], "cache_build": build_forwards},
        "seconds": {"cache_build": round(shared + own_build, 3), "training": round(summary["seconds"]["total"] - own_build, 3),
                    "evaluation": result["seconds"]["evaluate"]},
        "steps": summary["steps"],
        "median_step_s": summary["median_step_s"],
        "peak_memory_mb": summary["peak_memory_mb"],
        "trainable_params": summary["trainable_params"],
        "scores": {split: {"tasks": s["tasks"], "mean": s["averages"].get("overall")} for split, s in result["scores"].items()},
        "run_dir": result["run_dir"],
        "pid": result["pid"],
    }


def best_by_validation(rows: dict[str, dict]) -> str | None:
    """The method to pick: highest mean validation score (never the test split)."""
    scored = {name: row["scores"]["validation"]["mean"] for name, row in rows.items()
              if row["scores"].get("validation", {}).get("mean") is not None}
    return max(scored, key=scored.get) if scored else None


def machine() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {gpu}"


def teacher_cell(row: dict) -> str:
    passes = row["teacher_forwards"]["training"]
    if passes["calls"]:
        return f"every step: {passes['calls']:,} passes ({passes['texts']:,} texts)"
    build = row["teacher_forwards"]["cache_build"]
    if row["reads_cache"]:
        return f"none (cache: {build['texts']:,} texts once, {row['seconds']['cache_build']:.1f} s)"
    return "none (no teacher)"


def memory_cell(row: dict) -> str:
    peak = row["peak_memory_mb"]
    rss = f"{peak['rss']:,} MB RSS" if peak.get("rss") is not None else "RSS n/a"
    if peak.get("cuda_allocated") is not None:
        return f"{peak['cuda_allocated']:,} MB CUDA ({peak['cuda_reserved']:,} reserved), {rss}"
    return rss


def quality_cell(row: dict, best: str | None) -> str:
    parts = []
    for split in ("validation", "test"):
        mean = row["scores"].get(split, {}).get("mean")
        text = "n/a" if mean is None else f"{mean:.2f}"
        parts.append(f"**{text}**" if split == "validation" and row["method"] == best else text)
    return " / ".join(parts)


def seed_table(order: list[str], rows: dict[str, dict], best: str | None) -> list[str]:
    lines = ["| Method | Teacher inference during training | Peak memory | Training speed | Quality (validation / test) |",
             "|---|---|---|---|---|"]
    for name in order:
        row = rows[name]
        speed = f"{row['median_step_s']:.3f} s/step; {row['steps']:,} steps in {row['seconds']['training']:.1f} s"
        lines.append(f"| `{name}` | {teacher_cell(row)} | {memory_cell(row)} | {speed} | {quality_cell(row, best)} |")
    return lines


def detail_table(order: list[str], rows: dict[str, dict]) -> list[str]:
    lines = ["| method | steps | median step (s) | cache build (s) | training (s) | evaluation (s) | peak RSS (MB) | "
             "CUDA peak allocated / reserved (MB) | trainable params | teacher passes in training (texts) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name in order:
        row = rows[name]
        peak, secs, passes = row["peak_memory_mb"], row["seconds"], row["teacher_forwards"]["training"]
        cuda = f"{peak['cuda_allocated']:,} / {peak['cuda_reserved']:,}" if peak.get("cuda_allocated") is not None else "-"
        lines.append(f"| `{name}` | {row['steps']:,} | {row['median_step_s']} | {secs['cache_build']:.1f} | {secs['training']:.1f} | "
                     f"{secs['evaluation']:.1f} | {peak.get('rss')} | {cuda} | {row['trainable_params']:,} | "
                     f"{passes['calls']:,} ({passes['texts']:,}) |")
    return lines


def score_table(order: list[str], rows: dict[str, dict]) -> list[str]:
    lines = ["| task | split | " + " | ".join(f"`{n}`" for n in order) + " |", "|---|---|" + "---:|" * len(order)]
    for split in ("validation", "test"):
        tasks = list(dict.fromkeys(t for n in order for t in rows[n]["scores"].get(split, {}).get("tasks", {})))
        for task in [*tasks, "mean"]:
            cells = []
            for name in order:
                found = rows[name]["scores"].get(split, {})
                value = found.get("mean") if task == "mean" else found.get("tasks", {}).get(task)
                cells.append("" if value is None else f"{value:.2f}")
            label = "**mean**" if task == "mean" else task
            lines.append(f"| {label} | {split} | " + " | ".join(cells) + " |")
    return lines


def markdown(report: dict) -> str:
    order, rows, best = report["methods"], report["results"], report["best_by_validation"]
    s = report["settings"]
    budget = f"{s['max_steps']} optimiser steps" if s["max_steps"] else f"{s['epochs']} epoch(s)"
    from types import SimpleNamespace

    from talas.models.export import describe_layers  # torch: only when a report is written

    layers = describe_layers(SimpleNamespace(student_layers=s.get("student_layers", []), student_num_layers=s["student_num_layers"]))
    lines = [
        "# Method comparison", "",
        f"Teacher `{s['teacher_model_name']}` → student `{s['student_model_name']}`{layers}; data `{s['train_data_path']}`; "
        f"budget {budget} at batch {s['batch_size']} (the steps column shows what each method ran); device {s['device']} ({report['machine']}). "
        f"Scores: mean main score ×100 over {', '.join(report['evaluation']['tasks'])}"
        + (f"; best on validation: `{best}` (bold)." if best else "."), "",
        *seed_table(order, rows, best), "",
        "Cache build = the shared teacher cache (built once, counted for each method that reads it); "
        "teacher passes are counted by a hook on the teacher, not assumed.", "",
        *detail_table(order, rows), "", *score_table(order, rows), "",
    ]
    if report["not_finished"]:
        lines += [f"Not finished: {', '.join(report['not_finished'])} (rerun the same command).", ""]
    lines += [f"![{name}](plots/{name}.png)" for name in PLOTS] + [""]
    return "\n".join(lines)


def loss_curve(run_dir: str) -> tuple[list[int], list[float]]:
    """(step, loss) from train_log.jsonl, steps counted on across stages (each stage restarts at 1)."""
    steps, losses, offset, last, stage = [], [], 0, 0, None
    path = os.path.join(run_dir, "train_log.jsonl")
    if not os.path.isfile(path):
        return steps, losses
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if record.get("stage") != stage:
                stage, offset = record.get("stage"), last
            last = offset + record["step"]
            steps.append(last)
            losses.append(record["loss"])
    return steps, losses


def plot(report: dict, folder: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only; set before pyplot is imported
    import matplotlib.pyplot as plt
    import numpy as np

    os.makedirs(folder, exist_ok=True)
    order, rows = report["methods"], report["results"]
    x = np.arange(len(order))

    splits = [s for s in ("validation", "test") if any(rows[n]["scores"].get(s) for n in order)]
    fig, axes = plt.subplots(1, len(splits), figsize=(6 * len(splits), 4), squeeze=False)
    for ax, split in zip(axes[0], splits, strict=True):
        tasks = list(dict.fromkeys(t for n in order for t in rows[n]["scores"].get(split, {}).get("tasks", {}))) + ["mean"]
        width = 0.8 / len(order)
        for i, name in enumerate(order):
            found = rows[name]["scores"].get(split, {})
            values = [found.get("tasks", {}).get(t, np.nan) for t in tasks[:-1]] + [found.get("mean", np.nan)]
            ax.bar(np.arange(len(tasks)) + (i - (len(order) - 1) / 2) * width, values, width, label=name)
        ax.set_xticks(np.arange(len(tasks)), tasks, rotation=30, ha="right")
        ax.set_title(f"{split} (main score ×100)")
    axes[0][0].legend()
    save(fig, os.path.join(folder, "scores.png"))

    # One panel per method: each loss has its own terms and scale, only the shapes compare.
    cols = min(3, len(order))
    fig, axes = plt.subplots((len(order) + cols - 1) // cols, cols, figsize=(4 * cols, 3 * ((len(order) + cols - 1) // cols)),
                             squeeze=False)
    for ax, name in zip(axes.flat, order, strict=False):  # the grid may have spare panels
        steps, losses = loss_curve(rows[name]["run_dir"])
        ax.plot(steps, losses, marker="." if len(steps) < 30 else None, color=f"C{order.index(name)}")
        ax.set_title(f"{name}: training loss")
        ax.set_xlabel("optimiser step (stages in turn)")
    for ax in list(axes.flat)[len(order):]:
        ax.axis("off")
    save(fig, os.path.join(folder, "loss.png"))

    fig, ax = plt.subplots(figsize=(7, 0.6 * len(order) + 1.5))
    left = np.zeros(len(order))
    for part in ("cache_build", "training", "evaluation"):
        values = np.array([rows[n]["seconds"][part] for n in order])
        ax.barh(x, values, left=left, label=part.replace("_", " "))
        left += values
    ax.set_yticks(x, order)
    ax.invert_yaxis()  # the first method on top, as in the tables
    ax.set_xlabel("wall time (s)")
    ax.legend()
    save(fig, os.path.join(folder, "time.png"))

    kinds = [k for k in ("rss", "cuda_allocated", "cuda_reserved") if any(rows[n]["peak_memory_mb"].get(k) is not None for n in order)]
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / max(1, len(kinds))
    for i, kind in enumerate(kinds):
        values = [rows[n]["peak_memory_mb"].get(kind) or 0 for n in order]
        ax.bar(x + (i - (len(kinds) - 1) / 2) * width, values, width, label=MEMORY_LABELS[kind])
    ax.set_xticks(x, order)
    ax.set_ylabel("MB")
    ax.legend()
    save(fig, os.path.join(folder, "memory.png"))


def save(fig, path: str) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(out: str, command: list[str], runs: list, done: dict[str, dict], caches: dict[str, dict | None]) -> str:
    """Write comparison.json, comparison.md and plots/ for the finished methods; returns the seed-shaped table."""
    order = [run.name for run in runs if run.name in done]
    rows = {run.name: method_row(run.name, done[run.name], caches.get(run.cache_id) if run.reads_cache else None)
            for run in runs if run.name in done}
    best = best_by_validation(rows)
    first = done[order[0]]
    report = {
        "command": command,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine(),
        "settings": {name: first["config"].get(name) for name in SHARED},
        "evaluation": first["evaluation"],
        "caches": {cid: {**c, "methods": [r.name for r in runs if r.cache_id == cid]} for cid, c in caches.items() if c},
        "methods": order,
        "results": rows,
        "best_by_validation": best,
        "not_finished": [run.name for run in runs if run.name not in done],
    }
    write_json(os.path.join(out, "comparison.json"), report)
    plot(report, os.path.join(out, "plots"))
    with open(os.path.join(out, "comparison.md"), "w", encoding="utf-8") as handle:
        handle.write(markdown(report))
    return "\n".join(seed_table(order, rows, best))
