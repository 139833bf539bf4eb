"""Option validation: every numeric option has a range in its option() metadata, checked as it is read
(command line or config file) and again for configs built in code; models, data and --save_dir are
checked before the teacher cache is built."""

import os
import shutil

import pytest
from test_train import refuse_teacher, seed_command, write_nli

from talas import cli
from talas.cli.options import build_parser, resolve_config
from talas.config import Range, check_options
from talas.errors import ConfigError
from talas.methods.stella import StellaConfig
from talas.methods.talas import TalasConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


BAD_VALUES = [
    (["--batch_size", "0"], "--batch_size 0 is out of range: it must be ≥ 1."),
    (["--batch_size", "-3"], "--batch_size -3 is out of range: it must be ≥ 1."),
    (["--epochs", "-1"], "--epochs -1 is out of range: it must be ≥ 0."),
    (["--learning_rate", "-1"], "--learning_rate -1 is out of range: it must be > 0."),
    (["--learning_rate", "0"], "--learning_rate 0 is out of range: it must be > 0."),
    (["--learning_rate", "nan"], "--learning_rate nan is not a finite number (valid: > 0)."),
    (["--learning_rate", "inf"], "--learning_rate inf is not a finite number (valid: > 0)."),
    (["--temperature", "0"], "--temperature 0 is out of range: it must be > 0."),
    (["--temperature", "-1"], "--temperature -1 is out of range: it must be > 0."),
    (["--temperature", "nan"], "--temperature nan is not a finite number (valid: > 0)."),
    (["--max_length", "0"], "--max_length 0 is out of range: it must be ≥ 2."),
    (["--max_length", "1"], "--max_length 1 is out of range: it must be ≥ 2."),
    (["--teacher_max_length", "1"], "--teacher_max_length 1 is out of range: it must be 0 or ≥ 2."),
    (["--grad_accum_steps", "0"], "--grad_accum_steps 0 is out of range: it must be ≥ 1."),
    (["--log_steps", "0"], "--log_steps 0 is out of range: it must be ≥ 1."),
    (["--save_steps", "-1"], "--save_steps -1 is out of range: it must be ≥ 0."),
    (["--save_total_limit", "-1"], "--save_total_limit -1 is out of range: it must be ≥ 0."),
    (["--warmup_ratio", "1"], "--warmup_ratio 1 is out of range: it must be in [0, 1)."),
    (["--warmup_ratio", "-0.1"], "--warmup_ratio -0.1 is out of range: it must be in [0, 1)."),
    (["--weight_decay", "-0.01"], "--weight_decay -0.01 is out of range: it must be ≥ 0."),
    (["--max_grad_norm", "-1"], "--max_grad_norm -1 is out of range: it must be ≥ 0."),
    (["--max_grad_norm", "nan"], "--max_grad_norm nan is not a finite number (valid: ≥ 0)."),
    (["--cache_chunk_size", "0"], "--cache_chunk_size 0 is out of range: it must be ≥ 1."),
    (["--cache_batch_size", "0"], "--cache_batch_size 0 is out of range: it must be ≥ 1."),
    (["--num_workers", "-1"], "--num_workers -1 is out of range: it must be ≥ 0."),
    (["--student_dropout", "nan"], "--student_dropout nan is not a finite number."),
    (["--epochs", "0"], "--epochs 0 with --max_steps 0: nothing to train."),
    (["--resume", "latest", "--overwrite"], "--resume continues the run in --save_dir and --overwrite replaces it: pass one of them."),
]


@pytest.mark.parametrize("argv,message", BAD_VALUES, ids=[" ".join(a) for a, _ in BAD_VALUES])
def test_bad_values_are_refused_naming_option_value_and_range(argv, message):
    with pytest.raises(ConfigError) as caught:
        resolve_config(TalasConfig, argv)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_config_file_value_is_checked_and_named_by_its_source(tmp_path):
    (tmp_path / "c.yaml").write_text("batch_size: 0\n")
    with pytest.raises(ConfigError, match=r"config file .*c.yaml.*--batch_size 0 is out of range: it must be ≥ 1"):
        resolve_config(TalasConfig, ["--config", str(tmp_path / "c.yaml")])


@pytest.mark.parametrize("argv", [
    ["--epochs", "0", "--max_steps", "3"], ["--warmup_ratio", "0"], ["--max_grad_norm", "0"], ["--teacher_max_length", "0"],
    ["--teacher_max_length", "2"], ["--max_length", "2"], ["--save_steps", "0"], ["--learning_rate", "1e-30"],
    ["--student_dropout", "-1"],
])
def test_edge_values_inside_the_range_are_accepted(argv):
    resolve_config(TalasConfig, argv)


def test_configs_built_in_code_are_checked_too():
    check_options(TalasConfig())
    with pytest.raises(ConfigError, match="--temperature 0 is out of range"):
        check_options(TalasConfig(temperature=0.0))
    with pytest.raises(ConfigError, match="--export_dim -1 is out of range"):  # a method's own field, same mechanism
        check_options(StellaConfig(export_dim=-1))


def test_range_membership_and_wording():
    assert (1 in Range(at_least=1), 0 in Range(at_least=1)) == (True, False)
    assert (0.5 in Range(above=0), 0 in Range(above=0)) == (True, False)
    assert (0 in Range(at_least=0, below=1), 1 in Range(at_least=0, below=1), 0.999 in Range(at_least=0, below=1)) == (True, False, True)
    assert (0 in Range(at_least=2, zero=True), 1 in Range(at_least=2, zero=True)) == (True, False)
    assert [str(r) for r in (Range(at_least=1), Range(above=0), Range(at_least=0, below=1), Range(at_least=2, zero=True))] == [
        "≥ 1", "> 0", "in [0, 1)", "0 or ≥ 2"]


def test_help_shows_each_range():
    text = " ".join(build_parser(TalasConfig).format_help().split())
    for flag, shown in (("batch_size", "(default: 128; valid: ≥ 1)"), ("warmup_ratio", "(default: 0.1; valid: in [0, 1))"),
                        ("temperature", "(default: 0.05; valid: > 0)"), ("teacher_max_length", "(default: 0; valid: 0 or ≥ 2)")):
        assert shown in text.split(f"--{flag} ")[-1][:300], flag


# ---- the same checks through the CLI, before anything heavy (tiny models, no teacher loaded) ----------

def run_cli(argv, capsys):
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_bad_option_fails_before_data_models_or_cache(workdir, tiny_bert, tiny_qwen3, monkeypatch, capsys):
    refuse_teacher(monkeypatch, tiny_qwen3)
    argv = seed_command(workdir / "missing.csv", tiny_bert, tiny_qwen3, "run", "--batch_size", "0")
    code, err = run_cli(argv, capsys)
    assert code == 2 and "error: command line: --batch_size 0 is out of range: it must be ≥ 1." in err
    assert not os.path.exists("run") and not os.path.exists("cache")


@pytest.mark.parametrize("role", ["student", "teacher"])
@pytest.mark.parametrize("broken,message", [
    ("no_config", "is not a model folder: it has no config.json."),
    ("no_weights", "has no weights (no *.safetensors or *.bin file)."),
    ("bad_tokenizer", "its tokenizer cannot be loaded"),
])
def test_a_folder_that_is_not_a_model_fails_before_the_cache(workdir, tiny_bert, tiny_qwen3, monkeypatch, capsys, role, broken, message):
    good = tiny_bert if role == "student" else tiny_qwen3
    shutil.copytree(good, "broken")
    if broken == "no_config":
        os.remove("broken/config.json")
    elif broken == "no_weights":
        for name in os.listdir("broken"):
            if name.endswith(".safetensors"):
                os.remove(os.path.join("broken", name))
    else:
        (workdir / "broken" / "tokenizer.json").write_text("{not json")
    refuse_teacher(monkeypatch, tiny_qwen3)  # the teacher must not be loaded: no cache is built
    data = write_nli(workdir / "nli.csv")
    student, teacher = ("broken", tiny_qwen3) if role == "student" else (tiny_bert, "broken")
    code, err = run_cli(seed_command(data, student, teacher, "run"), capsys)
    assert code == 2 and f"error: --{role}_model_name 'broken'" in err and message in err, err
    assert not os.path.exists("cache")


def test_max_length_above_the_model_limit_is_refused(workdir, tiny_bert, tiny_qwen3, capsys):
    data = write_nli(workdir / "nli.csv")
    os.symlink(tiny_bert, "student")
    code, err = run_cli(seed_command(data, "student", tiny_qwen3, "run", "--max_length", "1000"), capsys)
    assert code == 2
    assert "error: --max_length 1000 is more than 'student' accepts (128 tokens, its position limit). Pass --max_length 128 or less." in err
    assert not os.path.exists("cache")
    code, err = run_cli(seed_command(data, tiny_bert, tiny_qwen3, "run", "--teacher_max_length", "300"), capsys)
    assert code == 2 and "--teacher_max_length 300 is more than" in err and "(256 tokens" in err


def test_a_directory_as_data_file_says_it_is_a_directory(workdir, tiny_bert, tiny_qwen3, capsys):
    os.makedirs("data_folder")
    code, err = run_cli(seed_command("data_folder", tiny_bert, tiny_qwen3, "run"), capsys)
    assert code == 2 and "error: Data file 'data_folder' is a directory; pass one .csv, .tsv or .jsonl file inside it." in err


@pytest.mark.parametrize("save_dir,message", [
    ("a_file/run", "error: --save_dir 'a_file/run' cannot be created: "),
    ("/proc/talas_run", "error: --save_dir '/proc/talas_run' cannot be created: "),
])
def test_a_save_dir_that_cannot_be_created(workdir, tiny_bert, tiny_qwen3, capsys, save_dir, message):
    (workdir / "a_file").write_text("not a folder")
    data = write_nli(workdir / "nli.csv")
    code, err = run_cli(seed_command(data, tiny_bert, tiny_qwen3, save_dir), capsys)
    assert code == 2 and message in err and "Choose a folder you can write to." in err
    assert not os.path.exists("cache")


SHIPPED_CONFIGS = sorted(
    os.path.relpath(os.path.join(folder, name), ROOT)
    for folder in (os.path.join(ROOT, "config"), os.path.join(ROOT, "bench", "compare"))
    for name in os.listdir(folder) if name.endswith(".yaml")
)


@pytest.mark.parametrize("path", SHIPPED_CONFIGS)
def test_every_shipped_config_file_resolves_for_its_method(path):
    # A misspelt key or an out-of-range value in a file we ship is an error the user would meet first.
    from talas.config import load_config_file
    from talas.methods import get_method

    values = load_config_file(os.path.join(ROOT, path))
    cfg = resolve_config(get_method(values["method"]).config_class, ["--config", os.path.join(ROOT, path)])
    for key, value in values.items():  # (YAML reads 5e-5 as a string; the option's type converts it)
        assert getattr(cfg, key) == type(getattr(cfg, key))(value), (path, key)
