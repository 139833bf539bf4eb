"""Run folders that cannot be confused: a fresh run never adopts or replaces an earlier run's work,
--resume refuses a checkpoint trained otherwise (naming each difference), rotation deletes only this
run's checkpoints, config.json/run.json describe only runs that started, and the checkpoint holds
the best validation score and every process's RNG."""

import json
import os
import shutil
import types

import torch
from safetensors.torch import load_file
from test_evaluate import user_task_file
from test_train import seed_command, write_nli

from talas import cli
from talas.train.checkpoint import RECORD_FILE, RunFolder, list_checkpoints

CACHE = ("--cache_path", "cache/c.safetensors")


def run(argv, capsys):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def weights(save_dir):
    return load_file(os.path.join(save_dir, "model", "model.safetensors"))


def test_a_fresh_run_refuses_a_folder_holding_an_earlier_run(workdir, tiny_bert, tiny_qwen3, capsys):
    data = write_nli(workdir / "nli.csv")
    first = seed_command(data, tiny_bert, tiny_qwen3, "run", *CACHE, "--epochs", "3", "--save_steps", "2")
    assert run(first, capsys)[0] == 0
    before = {name: open(os.path.join("run/checkpoints", name, "training_state.pt"), "rb").read() for name in os.listdir("run/checkpoints")}
    exported = weights("run")
    # The case: another run (other lr, seed, save_steps) into the same folder.
    other = seed_command(data, tiny_bert, tiny_qwen3, "run", *CACHE, "--save_steps", "1", "--learning_rate", "5e-5", "--seed", "7")
    code, _, err = run(other, capsys)
    assert code == 2
    assert ("error: --save_dir 'run' holds an earlier run (2 checkpoint(s), the latest checkpoints/step-8; an exported student "
            "in model/). Continue it with --resume latest, replace it with --overwrite (its outputs move to run/replaced/), "
            "or choose another --save_dir.") in err
    # nothing of the earlier run changed
    assert {n: open(os.path.join("run/checkpoints", n, "training_state.pt"), "rb").read() for n in os.listdir("run/checkpoints")} == before
    assert all(torch.equal(exported[k], v) for k, v in weights("run").items())
    assert json.load(open("run/config.json"))["learning_rate"] == 2e-5  # still the earlier run's


def test_overwrite_moves_the_earlier_run_aside(workdir, tiny_bert, tiny_qwen3, capsys):
    data = write_nli(workdir / "nli.csv")
    assert run(seed_command(data, tiny_bert, tiny_qwen3, "run", *CACHE, "--save_steps", "2"), capsys)[0] == 0
    earlier = weights("run")
    earlier_id = json.load(open("run/run.json"))["run_id"]
    code, out, _ = run(seed_command(data, tiny_bert, tiny_qwen3, "run", *CACHE, "--save_steps", "1", "--seed", "7", "--overwrite"), capsys)
    assert code == 0 and "--overwrite: moved the earlier run's outputs to run/replaced/" in out
    (stamp,) = os.listdir("run/replaced")
    moved = os.path.join("run/replaced", stamp)
    assert sorted(os.listdir(os.path.join(moved, "checkpoints"))) == ["step-4", "step-6"]
    assert all(torch.equal(earlier[k], v) for k, v in load_file(os.path.join(moved, "model", "model.safetensors")).items())
    assert json.load(open(os.path.join(moved, "run.json")))["run_id"] == earlier_id
    assert json.load(open("run/run.json"))["run_id"] != earlier_id
    assert json.load(open("run/config.json"))["seed"] == 7
    assert sorted(os.listdir("run/checkpoints")) == ["step-5", "step-6"]  # the new run's own, rotated to 2


def test_resume_names_every_difference_that_changes_training(workdir, tiny_bert, tiny_qwen3, capsys):
    data = write_nli(workdir / "nli.csv")
    assert run(seed_command(data, tiny_bert, tiny_qwen3, "run", *CACHE, "--save_steps", "2"), capsys)[0] == 0
    argv = seed_command(data, tiny_bert, tiny_qwen3, "run", *CACHE, "--resume", "latest", "--learning_rate", "5e-5",
                        "--seed", "7", "--batch_size", "2", "--kd_loss", "cosine")
    code, _, err = run(argv, capsys)
    assert code == 2
    assert ("error: --resume run/checkpoints/step-6: this run differs from the checkpoint's: batch_size 4 → 2; "
            "learning_rate 2e-05 → 5e-05; seed 42 → 7; kd_loss 'mse' → 'cosine'. Resume with the checkpoint's settings, "
            "or start a fresh run (--overwrite, or another --save_dir).") in err
    # other data: fewer rows, then the same count with other texts
    with open("nli.csv", "a", encoding="utf-8") as handle:
        handle.write("an extra premise,an extra hypothesis,0\n")
    code, _, err = run(seed_command(data, tiny_bert, tiny_qwen3, "run", *CACHE, "--resume", "latest"), capsys)
    assert code == 2 and "training data " in err and "(12 → 13 rows)" in err
    write_nli(workdir / "nli.csv")
    text = open("nli.csv").read().replace("again", "once more")
    open("moved.csv", "w").write(text)
    code, _, err = run(seed_command(workdir / "moved.csv", tiny_bert, tiny_qwen3, "run", *CACHE, "--resume", "latest"), capsys)
    assert code == 2 and "(same row count, other texts or order)" in err


def test_resume_accepts_bookkeeping_differences_and_a_moved_data_file(workdir, tiny_bert, tiny_qwen3, capsys):
    data = write_nli(workdir / "nli.csv")
    assert run(seed_command(data, tiny_bert, tiny_qwen3, "run", *CACHE, "--save_steps", "2", "--save_total_limit", "0"), capsys)[0] == 0
    shutil.copy(data, "same_rows.csv")
    shutil.rmtree("run/checkpoints/step-6")  # as if killed after step 4
    shutil.rmtree("run/model")
    argv = seed_command(workdir / "same_rows.csv", str(tiny_bert) + "/", tiny_qwen3, "run", "--cache_path", "cache/c.safetensors",
                        "--resume", "latest", "--log_steps", "3", "--save_steps", "1", "--save_total_limit", "1", "--num_workers", "0")
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert "Resumed from run/checkpoints/step-4" in out


def test_rotation_deletes_only_this_runs_checkpoints(tmp_path):
    root = tmp_path / "checkpoints"
    for step, run_id in [(1, "ours"), (2, "other"), (3, "ours"), (4, "ours"), (9, "other")]:
        folder = root / f"step-{step}"
        folder.mkdir(parents=True)
        (folder / RECORD_FILE).write_text(json.dumps({"run_id": run_id, "step": step}))
    (root / "step-5.tmp").mkdir()  # an interrupted write: never a checkpoint, never counted
    folder = RunFolder(types.SimpleNamespace(save_total_limit=2, save_dir=str(tmp_path)), acc=None)
    folder.run_id = "ours"
    folder.rotate(str(root))
    assert sorted(os.listdir(root)) == ["step-2", "step-3", "step-4", "step-5.tmp", "step-9"]
    assert [os.path.basename(c.folder) for c in list_checkpoints(str(tmp_path))] == ["step-2", "step-3", "step-4", "step-9"]


def test_config_json_and_run_json_describe_only_a_run_that_started(workdir, tiny_bert, tiny_qwen3, capsys):
    data = write_nli(workdir / "nli.csv")
    (workdir / "bad.csv").write_text("premise,hypothesis,label\na,,0\n")
    # A fresh folder: the run fails on its data, and leaves no config.json or run.json behind.
    assert run(seed_command(workdir / "bad.csv", tiny_bert, tiny_qwen3, "fresh", *CACHE), capsys)[0] == 2
    assert not os.path.exists("fresh/config.json") and not os.path.exists("fresh/run.json")
    # A finished run, then a failing --overwrite run: nothing moved, config.json still the finished run's.
    assert run(seed_command(data, tiny_bert, tiny_qwen3, "run", *CACHE, "--max_steps", "2"), capsys)[0] == 0
    config = open("run/config.json").read()
    assert run(seed_command(workdir / "bad.csv", tiny_bert, tiny_qwen3, "run", *CACHE, "--overwrite", "--seed", "3"), capsys)[0] == 2
    assert open("run/config.json").read() == config and not os.path.exists("run/replaced") and os.path.isdir("run/model")
    record = json.load(open("run/run.json"))
    assert record["data"]["rows"] == 12 and len(record["run_id"]) == 12 and record["processes"] == 1


def test_checkpoint_holds_run_id_rng_per_process_and_best_score(workdir, tiny_bert, tiny_qwen3, capsys):
    data = write_nli(workdir / "nli.csv")
    tasks = user_task_file(workdir)
    argv = seed_command(data, tiny_bert, tiny_qwen3, "run", *CACHE, "--eval_tasks", "my-sts", "--eval_task_file", tasks)
    assert run(argv, capsys)[0] == 0
    scores = [json.loads(line)["mean"] for line in open("run/eval_log.jsonl")]
    run_id = json.load(open("run/run.json"))["run_id"]
    assert len(scores) == 2
    for step in (3, 6):
        folder = f"run/checkpoints/step-{step}"
        assert sorted(os.listdir(folder)) == [RECORD_FILE, "rng-0.pt", "training_state.pt"]
        record = json.load(open(os.path.join(folder, RECORD_FILE)))
        assert (record["run_id"], record["step"], record["processes"]) == (run_id, step, 1)
        state = torch.load(os.path.join(folder, "training_state.pt"), weights_only=True)
        # validation runs before the epoch's checkpoint, so the checkpoint knows the best score so far
        assert state["best_score"] == max(scores[: step // 3])
        assert "rng" not in state and "torch" in torch.load(os.path.join(folder, "rng-0.pt"), weights_only=True)


def test_a_resumed_run_keeps_best_model_unless_it_beats_the_saved_best_score(workdir, tiny_bert, tiny_qwen3, capsys):
    data = write_nli(workdir / "nli.csv")
    tasks = user_task_file(workdir)
    extra = (*CACHE, "--eval_tasks", "my-sts", "--eval_task_file", tasks)
    assert run(seed_command(data, tiny_bert, tiny_qwen3, "run", *extra), capsys)[0] == 0
    for name, best in (("high", 1e9), ("low", -1e9)):
        os.makedirs(f"{name}/checkpoints")
        shutil.copytree("run/checkpoints/step-3", f"{name}/checkpoints/step-3")
        shutil.copytree("run/best_model", f"{name}/best_model")
        path = f"{name}/checkpoints/step-3/training_state.pt"
        state = torch.load(path, weights_only=True)
        state["best_score"] = best
        torch.save(state, path)
        open(f"{name}/best_model/marker", "w").close()
        code, out, _ = run(seed_command(data, tiny_bert, tiny_qwen3, name, *extra, "--resume", "latest"), capsys)
        assert code == 0
        # epoch 2's score beats -1e9 (best_model replaced) and never 1e9 (best_model kept)
        assert ("New best validation score" in out) == (best < 0)
        assert os.path.exists(f"{name}/best_model/marker") == (best > 0)
