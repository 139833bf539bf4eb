"""Training step time and peak memory: `python bench/train_step.py [--steps 40] [--repeats 3]`.

Three variants, same student (all-MiniLM-L6-v2 cut to 2 layers), data, batches and seed, each in
its own process (so peak RSS is its own), interleaved per repeat:
- talas:        InfoNCE + KD against the cached teacher vectors (the cache is built beforehand);
- online:       the same loss with the teacher (all-MiniLM-L6-v2) run on every batch;
- student_only: InfoNCE alone (--w_kd 0: no teacher, no cache).
Step time = median over steps after the first 5 (from train_log.jsonl); peak RSS = ru_maxrss of
the training process (CUDA max allocated when on a GPU). Ratios are to student_only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import ROOT, TRAIN_TEXTS, machine, minilm_path  # noqa: E402

CHILD = r"""
import json, resource, sys, torch
from talas.cli import main
code = main(sys.argv[1:])
peak_cuda = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
print("BENCH " + json.dumps({"code": code, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                              "peak_cuda_mb": peak_cuda}))
"""

VARIANTS = {
    "talas": [],
    "online": ["--cache_teacher", "false"],
    "student_only": ["--w_kd", "0"],
}


def run(variant: str, args, workdir: str, cache: str, repeat: int = 0) -> dict:
    teacher = minilm_path()
    save = os.path.join(workdir, f"{variant}-{repeat}")
    argv = ["train", "--train_data_path", TRAIN_TEXTS, "--teacher_model_name", teacher, "--student_model_name", teacher,
            "--student_num_layers", "2", "--pooling_method", "mean", "--student_pooling", "mean", "--max_length", "128",
            "--batch_size", str(args.batch_size), "--max_steps", str(args.steps), "--log_steps", "1", "--save_dir", save,
            "--cache_path", cache, "--w_task", "0.5", "--device", args.device, *VARIANTS[variant]]
    out = subprocess.run([sys.executable, "-c", CHILD, *argv], capture_output=True, text=True, cwd=ROOT)
    line = [x for x in out.stdout.splitlines() if x.startswith("BENCH ")]
    if out.returncode or not line:
        raise SystemExit(f"{variant} failed:\n{out.stderr[-3000:]}")
    log = [json.loads(x) for x in open(os.path.join(save, "train_log.jsonl"))]
    elapsed = [b["elapsed_s"] - a["elapsed_s"] for a, b in zip(log, log[1:], strict=False)][5:]
    return {"step_s": statistics.median(elapsed), **json.loads(line[0][6:])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    cache = os.path.join(ROOT, "bench", "out", "cache_minilm_l6.safetensors")
    results: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory() as workdir:
        run("talas", argparse.Namespace(**{**vars(args), "steps": 7}), workdir, cache, -1)  # build the cache if missing
        for repeat in range(args.repeats):
            for variant in VARIANTS:
                results[variant].append(run(variant, args, workdir, cache, repeat))
    summary = {v: {k: round(statistics.median(r[k] for r in runs), 4) for k in ("step_s", "peak_rss_mb")} for v, runs in results.items()}
    base = summary["student_only"]
    for v in summary:
        summary[v]["step_ratio"] = round(summary[v]["step_s"] / base["step_s"], 3)
        summary[v]["rss_ratio"] = round(summary[v]["peak_rss_mb"] / base["peak_rss_mb"], 3)
    print(json.dumps({"machine": machine(), "steps": args.steps, "batch_size": args.batch_size, "results": summary}, indent=1))


if __name__ == "__main__":
    main()
