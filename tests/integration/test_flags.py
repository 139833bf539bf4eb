"""Flags mean what they say: no command expands an abbreviation, an unknown flag is one line naming the
closest flags, and the Hugging Face TrainingArguments names are aliases of ours (flags, config files, --help)."""

import json

import pytest
from test_train import write_nli

from talas import cli
from talas.cli import worker
from talas.cli.compare import split_flags
from talas.cli.flags import unknown_flags_message
from talas.cli.options import build_parser, resolve_config
from talas.cli.train import peek_method
from talas.config import aliases_of
from talas.errors import ConfigError
from talas.methods.talas import TalasConfig


def run_cli(argv, capsys):
    """(exit status, stderr) of `talas ARGV` (argparse must not exit on its own)."""
    code = cli.main(argv)
    return code, capsys.readouterr().err


# Exact lines; docs/errors.md rows FL1-FL6 quote them.
MESSAGES = {
    "FL1": (["train", "--lr", "1e-3"],
            "error: unknown flag --lr (did you mean --learning_rate or --lr_scheduler?). `talas train --help` lists every flag."),
    "FL2": (["train", "--pooling", "mean"],
            "error: unknown flag --pooling (did you mean --pooling_method or --student_pooling?). `talas train --help` lists every flag."),
    "FL3": (["train", "--fp16"],
            "error: command line: --fp16 asks for mixed_precision fp16, which TALAS does not support (mixed_precision: auto, bf16, no); use --bf16 instead."),
    "FL4": (["train", "--save_dir", "a", "--output_dir", "b"],
            "error: command line: --save_dir and --output_dir both set option 'save_dir', to 'a' and 'b'; pass one of them."),
    "FL5": (["compare", "--methods", "talas,stella", "--out", "o", "--lr", "1e-3"],
            "error: --lr is not an option of any of talas, stella (did you mean --learning_rate or --lr_scheduler?). "
            "Run `talas train --method M --help` for the options."),
}


@pytest.mark.parametrize("ident", MESSAGES)
def test_flag_mistakes_are_one_line_with_the_closest_flags(ident, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv, message = MESSAGES[ident]
    code, err = run_cli(argv, capsys)
    assert code == 2 and err.splitlines() == [message]
    assert not (tmp_path / "o").exists() and not (tmp_path / "checkpoints").exists()


CONFIG_KEY = ("error: Config file 'c.yaml' has unknown option(s) lr (did you mean learning_rate or lr_scheduler?). "
              "Run `talas train --help` for the valid names.")


def test_a_config_file_key_that_is_no_option_names_the_closest(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text("lr: 0.001\n")
    code, err = run_cli(["train", "--config", "c.yaml"], capsys)
    assert code == 2 and err.splitlines() == [CONFIG_KEY]


def test_docs_errors_quotes_these_messages():
    from test_errors_catalogue import doc_rows  # here: the mutation check's copy has no docs/ to read at import

    documented = {ident: message for ident, message, _ in doc_rows() if ident.startswith("FL")}
    assert documented == {**{ident: message for ident, (_, message) in MESSAGES.items()}, "FL6": CONFIG_KEY}


# One abbreviation per command: each used to be expanded to the one flag it starts.
ABBREVIATED = [
    (["train", "--learning", "1e-3"], "--learning_rate"),
    (["train", "--teacher_model", "t"], "--teacher_model_name"),
    (["cache", "--teacher_model", "t"], "--teacher_model_name"),
    (["cache", "--conv", "seed.pt"], "--convert"),
    (["eval", "--mod", "m"], "--model"),
    (["router", "--query", "q"], "--query_model"),
    (["compare", "--methods", "talas", "--out", "o", "--learning", "1e-3"], "--learning_rate"),
    (["compare", "--methods", "talas", "--ou", "o"], "--out"),
]


@pytest.mark.parametrize("argv,closest", ABBREVIATED, ids=[" ".join(a[:2]) for a, _ in ABBREVIATED])
def test_no_command_expands_an_abbreviation(argv, closest, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, err = run_cli(argv, capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "usage:" not in err
    assert closest in err, err


def test_the_worker_and_the_method_peek_read_whole_names_only(tmp_path, capsys):
    assert worker.main(["train", "--result", str(tmp_path / "r.json"), "--eval_task", "x", "--", "--epochs", "1"]) == 2
    assert "unknown flag --eval_task (did you mean --eval_task_file or --eval_tasks?)" in capsys.readouterr().err
    assert peek_method(["--meth", "dskd"]) == "talas"  # and the train parser then refuses --meth
    assert peek_method(["--method=dskd"]) == "dskd"


def test_argparse_mistakes_are_one_line_too(capsys):
    code, err = run_cli(["train", "--student_pooling"], capsys)
    assert code == 2 and err.splitlines() == ["error: talas train: argument --student_pooling: expected one argument."]


# Every Hugging Face TrainingArguments name we accept, the option it sets and the value it gives.
HF_NAMES = [
    (["--output_dir", "x"], "save_dir", "x"),
    (["--num_train_epochs", "2"], "epochs", 2),
    (["--per_device_train_batch_size", "8"], "batch_size", 8),
    (["--bf16"], "mixed_precision", "bf16"),
    (["--bf16", "true"], "mixed_precision", "bf16"),
    (["--bf16", "false"], "mixed_precision", "no"),
    (["--fp16", "false"], "mixed_precision", "no"),
    (["--logging_steps", "5"], "log_steps", 5),
    (["--gradient_accumulation_steps", "4"], "grad_accum_steps", 4),
    (["--lr_scheduler_type", "linear"], "lr_scheduler", "linear"),
    (["--resume_from_checkpoint", "latest"], "resume", "latest"),
    (["--overwrite_output_dir"], "overwrite", True),
    (["--dataloader_num_workers", "2"], "num_workers", 2),
    # already our names
    (["--learning_rate", "1e-3"], "learning_rate", 1e-3),
    (["--seed", "7"], "seed", 7),
    (["--save_steps", "3"], "save_steps", 3),
    (["--max_steps", "3"], "max_steps", 3),
    (["--warmup_ratio", "0.2"], "warmup_ratio", 0.2),
    (["--weight_decay", "0.1"], "weight_decay", 0.1),
    (["--max_grad_norm", "0.5"], "max_grad_norm", 0.5),
    (["--save_total_limit", "1"], "save_total_limit", 1),
    (["--gradient_checkpointing"], "gradient_checkpointing", True),
]


@pytest.mark.parametrize("argv,option,value", HF_NAMES, ids=[" ".join(a) for a, _, _ in HF_NAMES])
def test_hugging_face_names_set_our_options(argv, option, value):
    assert getattr(resolve_config(TalasConfig, argv), option) == value


def test_an_option_and_its_alias_may_agree_but_not_differ():
    assert resolve_config(TalasConfig, ["--epochs", "3", "--num_train_epochs", "3"]).epochs == 3
    assert resolve_config(TalasConfig, ["--mixed_precision", "bf16", "--bf16"]).mixed_precision == "bf16"
    with pytest.raises(ConfigError, match="--mixed_precision and --bf16 both set option 'mixed_precision', to 'no' and 'bf16'"):
        resolve_config(TalasConfig, ["--mixed_precision", "no", "--bf16"])
    with pytest.raises(ConfigError, match=r"command line \(--num_train_epochs\): option 'epochs' expects int, got 'two'"):
        resolve_config(TalasConfig, ["--num_train_epochs", "two"])


def test_config_files_take_the_alias_names_too(tmp_path):
    (tmp_path / "hf.yaml").write_text("output_dir: runs/x\nnum_train_epochs: 3\nbf16: true\n")
    cfg = resolve_config(TalasConfig, ["--config", str(tmp_path / "hf.yaml")])
    assert (cfg.save_dir, cfg.epochs, cfg.mixed_precision) == ("runs/x", 3, "bf16")
    # flags still override the file, under either name
    assert resolve_config(TalasConfig, ["--config", str(tmp_path / "hf.yaml"), "--epochs", "1"]).epochs == 1
    (tmp_path / "both.yaml").write_text("save_dir: a\noutput_dir: b\n")
    with pytest.raises(ConfigError, match="--save_dir and --output_dir both set option 'save_dir'"):
        resolve_config(TalasConfig, ["--config", str(tmp_path / "both.yaml")])


def test_help_lists_every_alias_beside_its_option():
    text = " ".join(build_parser(TalasConfig).format_help().split())
    table = aliases_of(TalasConfig)
    assert {"output_dir", "num_train_epochs", "per_device_train_batch_size", "bf16", "fp16", "logging_steps",
            "gradient_accumulation_steps"} <= set(table)
    for name in table:
        assert f"--{name}" in text
    assert "alias: --output_dir" in text and "--bf16 = bf16, --fp16: refused, fp16 is not supported" in text
    assert "aliases:\n" not in build_parser(TalasConfig).format_help()  # the hidden flags add no empty section


def test_compare_gives_aliases_to_the_methods_and_reserves_theirs():
    flags = split_flags(["--num_train_epochs", "1", "--cache_dtype", "float16"], ["talas", "dskd"])
    assert flags["talas"] == ["--num_train_epochs", "1", "--cache_dtype", "float16"]
    assert flags["dskd"] == ["--num_train_epochs", "1"]  # the alias is an option every method has
    with pytest.raises(ConfigError, match=r"talas compare sets --save_dir itself \(--output_dir is its alias\)"):
        split_flags(["--output_dir", "x"], ["talas"])


def test_hugging_face_names_train_as_ours(tmp_path, monkeypatch, tiny_bert, tiny_qwen3, capsys):
    monkeypatch.chdir(tmp_path)
    write_nli(tmp_path / "nli.csv")
    argv = ["train", "--train_data_path", "nli.csv", "--student_model_name", str(tiny_bert), "--teacher_model_name",
            str(tiny_qwen3), "--output_dir", "x", "--num_train_epochs", "1", "--per_device_train_batch_size", "4",
            "--max_steps", "2", "--logging_steps", "1", "--max_length", "32", "--device", "cpu", "--bf16", "false",
            "--cache_path", "cache/c.safetensors"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    config = json.loads((tmp_path / "x" / "config.json").read_text())
    assert (config["save_dir"], config["epochs"], config["batch_size"], config["log_steps"], config["mixed_precision"]) == \
        ("x", 1, 4, 1, "no")
    assert "output_dir" not in config


def test_the_value_after_an_unknown_flag_is_not_reported_as_another():
    known = {"learning_rate": "learning_rate", "lr_scheduler": "lr_scheduler"}
    assert unknown_flags_message(["--lr", "-1"], known, "talas train") == \
        "unknown flag --lr (did you mean --learning_rate or --lr_scheduler?). `talas train --help` lists every flag."
    assert "unexpected argument 'stray'" in unknown_flags_message(["stray", "--lr", "1"], known, "talas train")
