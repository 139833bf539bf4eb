"""End to end: the seed command on a tiny BERT student and a tiny Qwen3 teacher, cache reuse,
export round trip, CLI errors and help (resume: tests/integration/test_resume.py)."""

import csv
import json
import os
import subprocess
import sys

import pytest
import torch
from e2e_helpers import seed_config

from talas import cli
from talas.cli.options import build_parser
from talas.config import option_fields
from talas.methods.talas import TalasConfig, TalasMethod

SENTENCES = [
    "a man is playing a guitar", "a woman is slicing an onion", "the cat sits on the mat",
    "two dogs run across the field", "i feel happy and relaxed today", "my card payment was declined",
    "how do i reset my pin", "the stock market fell sharply", "children are playing in the park",
    "a plane is taking off", "the man plays guitar on stage", "an onion is being cut",
]


def write_nli(path):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["premise", "hypothesis", "label"])
        for i, s in enumerate(SENTENCES):
            writer.writerow([s, SENTENCES[(i + 1) % len(SENTENCES)] + " again", 0])
            writer.writerow([s, "nothing like " + s, 2])
            writer.writerow([s, "maybe " + s, 1])
    return path


def seed_command(data, student, teacher, save_dir, *extra):
    # The seed's command (SPEC §1, with the seed's last-token poolings, README) with local paths for the models
    # and a tiny budget.
    return ["train", "--method", "talas", "--train_data_path", str(data), "--student_model_name", str(student),
            "--teacher_model_name", str(teacher), "--save_dir", str(save_dir), "--batch_size", "4", "--epochs", "2",
            "--learning_rate", "2e-5", "--max_length", "32", "--temperature", "0.05", "--device", "cpu",
            "--pooling_method", "last_token", "--student_pooling", "last_token", *extra]


def refuse_teacher(monkeypatch, teacher):
    """Make loading the teacher's weights an error; the student still loads."""
    import talas.models.encoder

    real = talas.models.encoder.load_model

    def guarded(name, *args, **kwargs):
        if os.path.abspath(name) == os.path.abspath(teacher):
            raise AssertionError("the teacher was loaded although a valid cache exists")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(talas.models.encoder, "load_model", guarded)


def test_seed_command_builds_cache_then_reuses_it_and_exports(workdir, tiny_bert, tiny_qwen3, capsys, monkeypatch):
    data = write_nli(workdir / "AllNLI.csv")
    assert cli.main(seed_command(data, tiny_bert, tiny_qwen3, "checkpoints/talas")) == 0
    out = capsys.readouterr().out
    assert "Cache not found" in out
    # 12 premises + 12 entailment hypotheses + 12 contradiction hypotheses, neutral rows dropped
    assert "Cached 36 teacher embeddings to cache/teacher_train.safetensors" in out
    assert "Teacher model freed" in out
    assert "Training samples: 12" in out and "Training batches: 3" in out
    assert json.load(open("checkpoints/talas/config.json"))["batch_size"] == 4
    log = [json.loads(line) for line in open("checkpoints/talas/train_log.jsonl")]
    assert log[-1]["step"] == 6 and {"loss", "task", "kd", "lr"} <= set(log[-1])

    refuse_teacher(monkeypatch, tiny_qwen3)
    assert cli.main(seed_command(data, tiny_bert, tiny_qwen3, "checkpoints/run2")) == 0
    out = capsys.readouterr().out
    assert "Found valid teacher cache" in out and "Cache not found" not in out

    # The exported folder reproduces the trained student (from its last checkpoint) in sentence-transformers.
    from sentence_transformers import SentenceTransformer

    from talas.models.encoder import Encoder

    cfg = TalasConfig(student_model_name=str(tiny_bert), max_length=32)
    student = Encoder.load(str(tiny_bert), "last_token", 32)
    method = TalasMethod(cfg, student, 48)
    state = torch.load("checkpoints/run2/checkpoints/step-6/training_state.pt", weights_only=True)
    method.load_state_dict(state["model"])
    assert method.projection is not None  # 32-d student, 48-d teacher
    expected = method.embed(SENTENCES)  # the student followed by the trained projection
    st = SentenceTransformer("checkpoints/run2/model", device="cpu")
    got = torch.as_tensor(st.encode(SENTENCES, convert_to_numpy=True))
    assert torch.allclose(got, expected, atol=1e-5)
    assert st.get_embedding_dimension() == 48  # the projection is exported: vectors in the teacher's space
    card = open("checkpoints/run2/model/README.md").read()
    assert str(tiny_qwen3) in card and "talas" in card
    # every trainable parameter, projection included, is in the optimizer and received updates;
    # BERT's pooler head, which sentence pooling never uses, is frozen (DDP rejects unused parameters)
    n_params = sum(1 for name, p in method.named_parameters() if p.requires_grad and ".pooler." not in name)
    assert sum(len(g["params"]) for g in state["optimizer"]["param_groups"]) == n_params
    assert len(state["optimizer"]["state"]) == n_params


def test_online_teacher_mode_and_single_text_data(workdir, tiny_bert, tiny_qwen3, capsys):
    (workdir / "texts.csv").write_text("text\n" + "\n".join(SENTENCES) + "\n")
    argv = seed_command(workdir / "texts.csv", tiny_bert, tiny_qwen3, "online", "--cache_teacher", "false",
                        "--student_pooling", "mean", "--max_steps", "2", "--gradient_checkpointing", "true",
                        "--grad_accum_steps", "2", "--lr_scheduler", "linear")
    assert cli.main(argv) == 0
    assert not os.path.exists("cache")
    log = [json.loads(line) for line in open("online/train_log.jsonl")]
    assert log[-1]["step"] == 2 and log[-1]["kd"] > 0


def test_config_file_then_flags_override(workdir, tiny_bert, tiny_qwen3):
    from talas.cli.options import resolve_config

    (workdir / "c.yaml").write_text("batch_size: 16\nlearning_rate: 1.0e-4\nkd_both_sides: false\n")
    cfg = resolve_config(TalasConfig, ["--config", "c.yaml", "--learning_rate", "3e-5"])
    assert (cfg.batch_size, cfg.learning_rate, cfg.kd_both_sides) == (16, 3e-5, False)
    assert cfg.w_task == 0.5 and cfg.pooling_method == "auto"
    (workdir / "bad.json").write_text(json.dumps({"batch_sise": 3}))
    with pytest.raises(Exception, match="unknown option.*batch_sise"):
        resolve_config(TalasConfig, ["--config", "bad.json"])
    with pytest.raises(Exception, match="'epochs' expects int"):
        resolve_config(TalasConfig, ["--epochs", "two"])


@pytest.mark.parametrize(
    "argv,message",
    [
        (["train", "--method", "distil"], "Unknown method 'distil'; choose one of talas"),
        (["train", "--train_data_path", "missing.csv"], "missing.csv' does not exist"),
        (["train", "--train_data_path", "t.csv", "--student_model_name", "./no/such/model"], "does not exist"),
        (["train", "--student_pooling", "max"], "invalid choice"),
    ],
)
def test_user_errors_are_one_clear_line(workdir, capsys, argv, message):
    (workdir / "t.csv").write_text("text\nhello\n")
    code = None
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and message in err
    assert "Traceback" not in err


def test_help_lists_every_flag_with_its_default():
    text = build_parser(TalasConfig).format_help()
    for f in option_fields(TalasConfig):
        assert f"--{f.name}" in text
    assert text.count("(default:") >= len(option_fields(TalasConfig))
    for seed_key in ("cache_teacher", "cache_path", "pooling_method", "normalize_cache", "cache_dtype", "w_task", "w_kd"):
        assert f"--{seed_key}" in text


def test_main_py_help_and_light_import():
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    result = subprocess.run([sys.executable, os.path.join(root, "main.py"), "--help"], capture_output=True, text=True, cwd=root)
    assert result.returncode == 0 and "--teacher_model_name" in result.stdout and "--w_kd" in result.stdout
    probe = "import sys, talas; print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=root)
    assert result.stdout.strip() == "[]"


def test_seed_config_module_exposes_the_seed_keys():
    talas_config = seed_config("talas_config")
    assert talas_config.cache_teacher is True
    assert talas_config.pooling_method == "last_token"
    assert talas_config.normalize_cache is False and talas_config.cache_dtype == "float32"
    assert talas_config.w_task == 0.5 and talas_config.w_kd == 0.5


def test_student_only_baseline_needs_no_teacher(workdir, tiny_bert, capsys):
    data = write_nli(workdir / "nli.csv")
    # a teacher path that does not load as a model: it must never be touched
    (workdir / "not_a_model").mkdir()
    argv = seed_command(data, tiny_bert, workdir / "not_a_model", "baseline", "--w_kd", "0", "--max_steps", "2")
    assert cli.main(argv) == 0
    assert "student-only" in capsys.readouterr().out and not os.path.exists("cache")
    log = [json.loads(line) for line in open("baseline/train_log.jsonl")]
    assert log[-1]["step"] == 2 and "kd" not in log[-1]
    assert cli.main([*argv[:-4], "--w_kd", "0", "--w_task", "0"]) == 2


def test_fresh_run_keeps_the_previous_log(workdir, tiny_bert, tiny_qwen3):
    data = write_nli(workdir / "nli.csv")
    argv = seed_command(data, tiny_bert, tiny_qwen3, "run", "--max_steps", "1", "--log_steps", "1")
    assert cli.main(argv) == 0 and cli.main([*argv, "--overwrite"]) == 0  # without it, the folder is refused
    assert len(open("run/train_log.jsonl").readlines()) == 1
    (replaced,) = os.listdir("run/replaced")  # the earlier run's outputs, moved aside with its log
    assert len(open(f"run/replaced/{replaced}/train_log.jsonl").readlines()) == 1


def test_cache_command_builds_and_converts(workdir, tiny_qwen3, capsys):
    data = write_nli(workdir / "nli.csv")
    base = ["cache", "--train_data_path", str(data), "--teacher_model_name", str(tiny_qwen3), "--max_length", "32",
            "--device", "cpu"]
    assert cli.main(base) == 0
    assert "Teacher cache ready: cache/teacher_train.safetensors (36 x 48, float32)" in capsys.readouterr().out
    torch.save({"teacher_cls": list(torch.randn(12, 48)), "metadata": {"teacher_model": str(tiny_qwen3)}}, "old.pt")
    assert cli.main([*base, "--convert", "old.pt", "--cache_path", "converted.safetensors"]) == 0
    assert "Converted 12 seed-format embeddings (dim 48) to converted.safetensors" in capsys.readouterr().out
