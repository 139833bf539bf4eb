"""Student queries against the teacher's index on the bundled QNLI retrieval task: scores and query speed.

    python bench/retrieval.py --name demo --teacher minilm --student checkpoints/demo/model
    python bench/retrieval.py --name mpnet_full --teacher mpnet --student bench/out/tune/talas_full/model

For one teacher/student pair, on QNLI-retrieval (test by default): indexes the corpus once with the
teacher (`talas cache`, timed), then one `talas eval` scores teacher/teacher and student/teacher
(both reading the corpus from that cache), student/student and the undistilled student (all-MiniLM-L6-v2's
first 2 layers: symmetric, and against the teacher's index when the widths match). Query speed is
measured side by side in this process: every query encoder embeds the same queries in turn, three
rounds, best round kept (batch 64), plus the median latency of one query at a time (batch 1).
Writes bench/out/retrieval/<name>.json and prints the Markdown rows of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import ROOT, machine, minilm_path, mpnet_path  # noqa: E402

OUT = os.path.join(ROOT, "bench", "out", "retrieval")
MAX_LENGTH = 256  # every model reads the same tokens (the students were trained at 128 but have 512 positions)


def undistilled_student() -> str:
    """all-MiniLM-L6-v2 cut to its first 2 layers, saved once as a sentence-transformers folder."""
    from sentence_transformers import SentenceTransformer

    folder = os.path.join(ROOT, "bench", "out", "models", "minilm_l6_first2")
    if not os.path.isfile(os.path.join(folder, "modules.json")):
        model = SentenceTransformer(minilm_path(), device="cpu")
        auto = model[0].auto_model
        auto.encoder.layer = auto.encoder.layer[:2]
        auto.config.num_hidden_layers = 2
        model.save(folder)
    return folder


def index_corpus(teacher: str, name: str, split: str) -> tuple[str, float | None]:
    """Build (or reuse) the teacher's cache of the task's corpus; returns its path and the build seconds (None: reused)."""
    from talas.cli import main as talas
    from talas.eval.task_file import load_tasks

    corpus = load_tasks(None, ["QNLI-retrieval"])[0].files[split]["corpus"]
    cache = os.path.join(OUT, f"qnli_{split}_corpus_{name}.safetensors")
    reused = os.path.isfile(cache)
    began = time.perf_counter()
    rc = talas(["cache", "--train_data_path", corpus, "--teacher_model_name", teacher, "--pooling_method", "mean",
                "--max_length", str(MAX_LENGTH), "--cache_path", cache, "--device", "cpu"])
    if rc:
        raise SystemExit(f"talas cache failed ({rc})")
    return cache, None if reused else time.perf_counter() - began


def query_speed(models: dict[str, str], queries: list[str], rounds: int = 3, single: int = 100) -> dict[str, dict[str, float]]:
    """Queries per second at batch 64 (best of ``rounds``, models interleaved) and median ms per single query."""
    from sentence_transformers import SentenceTransformer

    loaded = {name: SentenceTransformer(path, device="cpu") for name, path in models.items()}
    for model in loaded.values():
        model.max_seq_length = MAX_LENGTH
        model.encode_query(queries[:64], batch_size=64)  # warm-up
    best = {name: float("inf") for name in loaded}
    for _ in range(rounds):
        for name, model in loaded.items():
            began = time.perf_counter()
            model.encode_query(queries, batch_size=64)
            best[name] = min(best[name], time.perf_counter() - began)
    latency = {name: [] for name in loaded}
    for query in queries[:single]:
        for name, model in loaded.items():
            began = time.perf_counter()
            model.encode_query([query], batch_size=1)
            latency[name].append(time.perf_counter() - began)
    return {name: {"queries_per_s": len(queries) / best[name], "ms_per_single_query": 1000 * statistics.median(latency[name])}
            for name in loaded}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="label of this teacher/student pair (output file name)")
    parser.add_argument("--teacher", choices=("minilm", "mpnet"), required=True)
    parser.add_argument("--student", required=True, help="the exported student folder")
    parser.add_argument("--split", default="test", choices=("validation", "test"))
    parser.add_argument("--index_only", action="store_true", help="only build the teacher's corpus cache (timed), then stop")
    args = parser.parse_args(argv)
    from talas.cli.eval import main as talas_eval
    from talas.eval.task_file import load_tasks

    os.makedirs(OUT, exist_ok=True)
    teacher = minilm_path() if args.teacher == "minilm" else mpnet_path()
    student, raw = os.path.abspath(args.student), undistilled_student()
    cache, index_seconds = index_corpus(teacher, args.teacher, args.split)
    if args.index_only:
        print(f"corpus cache {cache}: " + (f"built in {index_seconds:.1f} s" if index_seconds else "already there"))
        return 0
    runs = [("teacher / teacher", teacher, teacher), ("student / teacher", student, teacher)]
    if args.teacher == "minilm":  # the undistilled student is 384-d: it can query the MiniLM index, not the mpnet one
        runs.append(("undistilled / teacher", raw, teacher))
    flags = ["--task", "QNLI-retrieval", "--split", args.split, "--max_length", str(MAX_LENGTH), "--device", "cpu",
             "--no_progress", "--output_dir", os.path.join(OUT, args.name), "--model", student, "--model", raw]
    for _, query, corpus in runs:
        flags += ["--query_model", query, "--corpus_model", corpus, "--corpus_cache", cache]
    flags += ["--name", "student / student", "--name", "undistilled / undistilled", *[x for run in runs for x in ("--name", run[0])]]
    began = time.perf_counter()
    if talas_eval(flags):
        raise SystemExit("talas eval failed")
    eval_seconds = time.perf_counter() - began
    with open(os.path.join(OUT, args.name, "eval_results.json"), encoding="utf-8") as handle:
        report = json.load(handle)
    queries = load_tasks(None, ["QNLI-retrieval"])[0].read(args.split).queries
    speed = query_speed({"teacher": teacher, "student": student, "undistilled": raw}, queries)
    rows = []
    for run in report["models"]:
        query_model = run["name"].split(" / ")[0]
        scores = run["results"]["tasks"]["QNLI-retrieval"]
        rows.append({"pairing": run["name"], **{k: round(scores[k], 2) for k in ("ndcg_at_10", "mrr_at_10", "recall_at_10", "recall_at_100")},
                     **{k: round(v, 2) for k, v in speed[query_model].items()}, "corpus_cache": run.get("corpus_cache")})
    summary = {"name": args.name, "teacher": teacher, "student": student, "split": args.split, "max_length": MAX_LENGTH,
               "corpus_index_seconds": index_seconds and round(index_seconds, 1), "eval_seconds": round(eval_seconds, 1), "machine": machine(),
               "rows": rows}
    with open(os.path.join(OUT, f"{args.name}.json"), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2)
    indexed = f"indexed by the teacher in {index_seconds:.0f} s" if index_seconds else "read from the teacher's existing cache"
    print(f"\n{args.name}: corpus {indexed}; eval {eval_seconds:.0f} s")
    print("| queries / corpus | nDCG@10 | MRR@10 | R@10 | R@100 | queries/s (batch 64) | ms per query (batch 1) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['pairing']} | {r['ndcg_at_10']:.2f} | {r['mrr_at_10']:.2f} | {r['recall_at_10']:.2f} | {r['recall_at_100']:.2f} "
              f"| {r['queries_per_s']:.0f} | {r['ms_per_single_query']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
