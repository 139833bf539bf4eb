"""`talas compare` and the run summary it reads: teacher forward passes counted by hooks (online
TALAS > 0 = batches × views, cached 0), a tiny-model comparison of every registered method end to
end (each in its own process, one shared cache), and the resume of a comparison killed after its
first method (proved from the files on disk, not from mocks)."""

import json
import os
import subprocess
import sys

import pytest
from test_train import SENTENCES, seed_command  # noqa: E402

from talas import cli
from talas.train.meter import SUMMARY_FILE


def summary(folder):
    with open(os.path.join(folder, SUMMARY_FILE), encoding="utf-8") as handle:
        return json.load(handle)


@pytest.fixture
def workdir(workdir):  # conftest's, holding texts.csv
    (workdir / "texts.csv").write_text("text\n" + "\n".join(SENTENCES) + "\n")
    return workdir


def test_online_teacher_forwards_are_batches_times_views(workdir, tiny_bert, tiny_qwen3):
    # 12 single texts, batch 4: 3 batches an epoch, 2 epochs, 2 micro-batches per optimiser step.
    # Each batch holds both views of its 4 texts (anchor and positive: 8 rows); the teacher is
    # deterministic, so it runs once per distinct text: 6 passes of 4 texts, after one pass over the
    # 12 texts for the projection's ridge start (the same start a cached run fits from its cache).
    argv = seed_command("texts.csv", tiny_bert, tiny_qwen3, "online", "--cache_teacher", "false",
                        "--student_pooling", "mean", "--grad_accum_steps", "2")
    assert cli.main(argv) == 0
    found = summary("online")
    assert found["teacher_forwards"]["training"] == {"calls": 1 + 6, "texts": 12 + 6 * 4}
    assert found["teacher_forwards"]["cache_build"] == {"calls": 0, "texts": 0}
    assert found["steps"] == 4  # ceil(3 / 2) optimiser steps an epoch (the last one on a single batch), 2 epochs
    assert found["median_step_s"] > 0 and found["peak_memory_mb"]["rss"] > 0
    assert found["peak_memory_mb"]["cuda_allocated"] is None  # a CPU run
    assert set(found["seconds"]) == {"setup", "teacher", "train", "export", "total"}


def test_cached_run_counts_the_build_apart_and_no_training_forwards(workdir, tiny_bert, tiny_qwen3):
    # The first run builds the cache: 12 unique texts in one teacher pass (cache batch 64), none after.
    argv = seed_command("texts.csv", tiny_bert, tiny_qwen3, "first", "--student_pooling", "mean")
    assert cli.main(argv) == 0
    first = summary("first")
    assert first["teacher_forwards"] == {"training": {"calls": 0, "texts": 0}, "cache_build": {"calls": 1, "texts": 12}}
    # A second run finds the cache: the teacher never runs.
    assert cli.main(seed_command("texts.csv", tiny_bert, tiny_qwen3, "second", "--student_pooling", "mean")) == 0
    second = summary("second")
    assert second["teacher_forwards"] == {"training": {"calls": 0, "texts": 0}, "cache_build": {"calls": 0, "texts": 0}}
    # The student (BERT, 2 layers) and the projection to the teacher's 48 dims, BERT's unused pooler excluded.
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(str(tiny_bert))
    pooler = sum(p.numel() for p in bert.pooler.parameters())
    expected = sum(p.numel() for p in bert.parameters()) - pooler + 32 * 48 + 48
    assert second["trainable_params"] == expected


# ---- talas compare end to end --------------------------------------------------------------------

STS_TASKS = """tasks:
  - name: tiny-sts
    type: sts
    files: {validation: sts_validation.csv, test: sts_test.csv}
    text_columns: [sentence1, sentence2]
    score_column: score
"""
#: Settings a method needs to run on the tiny models (the defaults assume real model widths).
TINY_CONFIGS = {"stella": "matryoshka_dims: [48, 16]\n"}


def write_inputs(root):
    (root / "texts.csv").write_text("text\n" + "\n".join(SENTENCES) + "\n")
    rows = [(SENTENCES[i], SENTENCES[j], (i * 7 + j * 3) % 6) for i in range(6) for j in range(6, 12)]
    for split, part in (("validation", rows[:18]), ("test", rows[18:])):
        (root / f"sts_{split}.csv").write_text("sentence1,sentence2,score\n" + "".join(f"{a},{b},{s}\n" for a, b, s in part))
    (root / "tasks.yaml").write_text(STS_TASKS)
    for name, text in TINY_CONFIGS.items():
        (root / f"{name}.yaml").write_text(text)


def compare_argv(root, tiny_bert, tiny_qwen3, methods, *extra):
    configs = [f"--method_config={m}={root / (m + '.yaml')}" for m in methods if m in TINY_CONFIGS]
    return ["compare", "--methods", ",".join(methods), *configs, "--out", str(root / "out"),
            "--eval_task_file", str(root / "tasks.yaml"), "--train_data_path", str(root / "texts.csv"),
            "--student_model_name", str(tiny_bert), "--teacher_model_name", str(tiny_qwen3), "--max_length", "32",
            "--batch_size", "4", "--epochs", "0", "--max_steps", "2", "--device", "cpu", "--student_pooling", "mean",
            "--learning_rate", "1e-3", *extra]


def read(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


@pytest.fixture(scope="module")
def comparison(tmp_path_factory, tiny_bert, tiny_qwen3):
    """Every registered method compared on the tiny models: the first invocation is killed (SIGKILL)
    right after the first method's result is written, the second finishes the comparison."""
    import contextlib
    import io

    from talas.methods import METHODS

    assert {"talas", "stella"} <= set(METHODS)
    methods = list(METHODS)
    root = tmp_path_factory.mktemp("compare")
    write_inputs(root)
    argv = compare_argv(root, tiny_bert, tiny_qwen3, methods)
    env = {**os.environ, "TALAS_FAULT": "compare_method_done:1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    killed = subprocess.run([sys.executable, "-m", "talas.cli", *argv], env=env, capture_output=True, text=True, cwd=root)
    out = root / "out"
    first = methods[0]
    before = {"results": sorted(os.listdir(out / "results")), "status": killed.returncode, "stdout": killed.stdout,
              "result_bytes": (out / "results" / f"{first}.json").read_bytes(),
              "log_bytes": (out / "runs" / first / "train_log.jsonl").read_bytes(),
              "model_mtime": os.stat(out / "runs" / first / "model" / "model.safetensors").st_mtime_ns}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = cli.main(argv)
    return {"root": root, "out": out, "methods": methods, "argv": argv, "before": before, "status": status,
            "stdout": printed.getvalue()}


def test_compare_resumes_without_rerunning_the_finished_method(comparison):
    before, out, methods = comparison["before"], comparison["out"], comparison["methods"]
    first = methods[0]
    # The first invocation died (SIGKILL) with one method finished, the cache built, nothing else.
    assert before["status"] == -9, before["stdout"]
    assert before["results"] == sorted([f"{first}.json", next(f for f in before["results"] if f.startswith("cache-"))])
    assert f"[1/{len(methods)}] {first}: training" in before["stdout"]
    # The second finished the rest and left the first method's files exactly as they were.
    assert comparison["status"] == 0, comparison["stdout"]
    assert f"[1/{len(methods)}] {first}: already done" in comparison["stdout"]
    assert (out / "results" / f"{first}.json").read_bytes() == before["result_bytes"]
    assert (out / "runs" / first / "train_log.jsonl").read_bytes() == before["log_bytes"]
    assert os.stat(out / "runs" / first / "model" / "model.safetensors").st_mtime_ns == before["model_mtime"]
    assert not (out / "runs" / first / "replaced").exists()
    # its training ran once: one attempt in its log, in a process of its own
    assert open(out / "logs" / f"{first}.log").read().count("$ ") == 1
    report = read(out / "comparison.json")
    assert report["methods"] == methods and report["not_finished"] == []
    pids = {report["results"][m]["pid"] for m in methods}
    assert len(pids) == len(methods) and os.getpid() not in pids


def test_compare_measures_every_registered_method(comparison):
    out, methods = comparison["out"], comparison["methods"]
    report = read(out / "comparison.json")
    (cache,) = report["caches"].values()  # one cache, built once, for every method that reads it
    cached = cache["methods"]
    assert {"talas", "stella"} <= set(cached)
    assert cache["teacher_forwards"] == {"calls": 1, "texts": len(SENTENCES)}
    assert open(out / "logs" / f"cache-{next(iter(report['caches']))}.log").read().count("$ ") == 1
    for name in methods:
        row = report["results"][name]
        run = read(out / "results" / f"{name}.json")
        passes = row["teacher_forwards"]["training"]
        if name in cached:
            # read the shared cache: no teacher in training, no cache of its own
            assert passes == {"calls": 0, "texts": 0}
            assert run["summary"]["teacher_forwards"]["cache_build"]["calls"] == 0
            assert row["seconds"]["cache_build"] == cache["seconds"]
        else:
            # an online teacher: one pass per batch (2 steps, no accumulation) over the 4 distinct texts of its 2 views
            assert passes == {"calls": 2, "texts": 2 * 4}, name
            assert row["seconds"]["cache_build"] == 0
        assert row["steps"] == (6 if name == "stella" else 2)  # Stella: the budget for each of its 3 stages
        assert row["median_step_s"] > 0 and row["seconds"]["training"] > 0 and row["seconds"]["evaluation"] > 0
        assert row["peak_memory_mb"]["rss"] > 100 and row["trainable_params"] > 0
        assert set(row["scores"]) == {"validation", "test"}
        assert -100 <= row["scores"]["test"]["tasks"]["tiny-sts"] <= 100
        assert run["config"]["learning_rate"] == 1e-3 and run["config"]["batch_size"] == 4
    assert read(out / "results" / "stella.json")["config"]["matryoshka_dims"] == [48, 16]  # its --method_config
    best = report["best_by_validation"]
    assert report["results"][best]["scores"]["validation"]["mean"] == max(
        report["results"][m]["scores"]["validation"]["mean"] for m in methods)
    table = (out / "comparison.md").read_text()
    assert "| Method | Teacher inference during training | Peak memory | Training speed | Quality (validation / test) |" in table
    for name in methods:
        assert f"| `{name}` |" in table
    for plot in ("scores", "loss", "time", "memory"):
        assert (out / "plots" / f"{plot}.png").stat().st_size > 1000
    for index, name in enumerate(methods[1:], start=2):  # one progress line each, with its figures
        assert f"[{index}/{len(methods)}] {name}: training " in comparison["stdout"]


def test_compare_refuses_to_mix_settings_into_a_finished_comparison(comparison, capsys):
    argv = [a if a != "1e-3" else "5e-4" for a in comparison["argv"]]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"{comparison['methods'][0]}.json was measured with other settings (learning_rate 0.001 → 0.0005)" in err


@pytest.mark.parametrize("extra,message", [
    (["--save_dir", "x"], "talas compare sets --save_dir itself"),
    (["--no_such_flag", "1"], "--no_such_flag is not an option of any of talas, stella"),
    (["--method_config", "dskd_typo=x.yaml"], "'dskd_typo' is not among --methods"),
    (["--methods", "talas,talas"], "--methods lists talas more than once"),
    # a method's file may tune it, not change what every method shares
    (["--method_config", "stella={root}/other_seed.yaml"], "seed: talas 42, stella 7 (from "),
])
def test_compare_option_errors_fail_before_anything_runs(tmp_path, tiny_bert, tiny_qwen3, capsys, extra, message):
    write_inputs(tmp_path)
    (tmp_path / "other_seed.yaml").write_text("seed: 7\nmatryoshka_dims: [48]\n")
    argv = compare_argv(tmp_path, tiny_bert, tiny_qwen3, ["talas", "stella"])
    if extra[0] in ("--method_config", "--methods"):
        argv = [a for a in argv if not a.startswith("--method_config=stella=")]
    argv += [a.format(root=tmp_path) for a in extra]  # a later --methods wins
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
