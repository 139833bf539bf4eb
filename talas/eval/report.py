"""`talas eval`'s report: the Markdown tables, the bar chart and the JSON results file.

``eval_results.md`` holds one table of main scores (a column per model) and a detail table per
model; ``comparison.png`` the main scores side by side (written when more than one model runs);
``eval_results.json`` everything, with the settings and the package versions that produced it.
"""

from __future__ import annotations

import json
import os
import platform
from importlib import metadata
from typing import Any

import numpy as np

from talas.eval.evaluate import MAIN_SCORE
from talas.eval.task_file import TASK_TYPES

# The metric columns of the per-model detail table, in this order (a table shows those its tasks have).
DETAIL_METRICS = ("spearman", "pearson", "accuracy", "f1", "ap", "macro_f1", "threshold",
                  "ndcg_at_10", "mrr_at_10", "recall_at_10", "recall_at_100")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("talas", "torch", "transformers", "sentence-transformers", "scikit-learn", "numpy", "scipy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def scored_tasks(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every task some run scored, in order, with its scores from the first run that has it."""
    tasks: dict[str, dict[str, Any]] = {}
    for r in runs:
        for task, scores in r["results"]["tasks"].items():
            tasks.setdefault(task, scores)
    return tasks


def main_table(runs: list[dict[str, Any]]) -> list[str]:
    """Main score of every task and the averages, one column per model (blank where a run skipped the task).

    A run's overall mean is shown only when it scored every task of the table, so the row compares like with like.
    """
    tasks = scored_tasks(runs)
    lines = ["| task | type | metric | " + " | ".join(r["name"] for r in runs) + " |",
             "|---|---|---|" + "---:|" * len(runs)]
    for task, scores in tasks.items():
        values = " | ".join(f"{r['results']['tasks'][task][scores['main_score']]:.2f}" if task in r["results"]["tasks"] else ""
                            for r in runs)
        lines.append(f"| {task} | {scores['type']} | {scores['main_score']} | {values} |")
    for kind in (*TASK_TYPES, "overall"):
        if any(kind in r["results"]["averages"] for r in runs):
            metric = MAIN_SCORE.get(kind, "mean")
            values = " | ".join(
                f"**{r['results']['averages'][kind]:.2f}**"
                if kind in r["results"]["averages"] and (kind != "overall" or len(r["results"]["tasks"]) == len(tasks)) else ""
                for r in runs)
            lines.append(f"| **{kind} average** | | {metric} | {values} |")
    return lines


def detail_table(run: dict[str, Any]) -> list[str]:
    tasks = run["results"]["tasks"]
    shown = [m for m in DETAIL_METRICS if any(m in scores for scores in tasks.values())]
    lines = ["| task | rows | " + " | ".join(shown) + " |", "|---|---:|" + "---:|" * len(shown)]
    for task, scores in tasks.items():
        cells = [f"{scores[m]:.{4 if m == 'threshold' else 2}f}" if m in scores else "" for m in shown]
        lines.append(f"| {task} | {scores['rows']} | " + " | ".join(cells) + " |")
    return lines


def describe_model(info: dict[str, Any]) -> str:
    return f"`{info['model']}` ({info['kind']}, pooling {info['pooling']}, dim {info['dim']})"


def describe_run(run: dict[str, Any]) -> str:
    results = run["results"]
    if "query" in run:
        models = f"queries: {describe_model(run['query'])}; corpus: {describe_model(run['corpus'])}"
        cache = run.get("corpus_cache")
        if cache:
            models += f"; {cache['from_cache']} corpus vectors read from `{cache['path']}`, {cache['encoded']} encoded"
    else:
        models = describe_model(run)
    speed = f" Queries: {run['query_texts_per_s']:.1f} per second." if run.get("query_texts_per_s") else ""
    return f"{models}; {results['n_texts']} unique texts encoded in {results['encode_seconds']:.1f} s.{speed}"


def markdown_report(runs: list[dict[str, Any]], split: str) -> str:
    lines = [f"# Evaluation ({split} split)", "", *main_table(runs), ""]
    for run in runs:
        skipped = run["results"]["skipped"]
        lines += [f"## {run['name']}", "", describe_run(run), "", *detail_table(run), ""]
        lines += [f"- skipped {task}: {why}" for task, why in skipped.items()] + ([""] if skipped else [])
    return "\n".join(lines)


def bar_chart(runs: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed; set before pyplot is imported
    import matplotlib.pyplot as plt

    labels = [*scored_tasks(runs), "overall"]
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(labels)), 4.0))
    for i, run in enumerate(runs):
        tasks = run["results"]["tasks"]
        # A task the run skipped has no bar (NaN), nor has its overall mean unless it scored every task.
        values = [tasks[t][tasks[t]["main_score"]] if t in tasks else np.nan for t in labels[:-1]]
        values.append(run["results"]["averages"]["overall"] if len(tasks) == len(labels) - 1 else np.nan)
        ax.bar(np.arange(len(labels)) + (i - (len(runs) - 1) / 2) * width, values, width, label=run["name"])
    ax.set_xticks(np.arange(len(labels)), labels, rotation=30, ha="right")
    ax.set_ylabel("main score (×100)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(output_dir: str, runs: list[dict[str, Any]], split: str) -> None:
    """eval_results.md, and comparison.png when several models ran."""
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "eval_results.md"), "w", encoding="utf-8") as handle:
        handle.write(markdown_report(runs, split))
    if len(runs) > 1:
        bar_chart(runs, os.path.join(output_dir, "comparison.png"))


def write_results(output_dir: str, document: dict[str, Any]) -> str:
    """eval_results.json: the runs with their settings, task declarations and package versions."""
    path = os.path.join(output_dir, "eval_results.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2)
    return path
