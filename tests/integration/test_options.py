"""Option validation: every numeric option has a range in its option() metadata, checked as it is read
(command line or config file) and again for configs built in code; models, data and --save_dir are
checked before the teacher cache is built."""

import os
import subprocess

import pytest
from e2e_helpers import broken_copy
from test_train import refuse_teacher, seed_command, write_nli

from talas import cli
from talas.cli.options import build_parser, resolve_config
from talas.config import Range, check_options
from talas.errors import ConfigError
from talas.methods.stella import StellaConfig
from talas.methods.talas import TalasConfig

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


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
    broken_copy(str(good), {"no_config": "config", "no_weights": "weights"}.get(broken, "tokenizer"))
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
    assert code == 2 and "error: Data path 'data_folder' is a folder but not a `datasets` save_to_disk folder" in err


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


# ---- one schema: groups, per-command help, Python use, the resolved-config summary -------------------

def help_of(argv, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(argv)
    assert done.value.code == 0
    return capsys.readouterr().out


def test_every_option_has_a_group_and_overrides_keep_the_general_ones():
    from talas.config import GROUPS, CacheConfig, option_fields
    from talas.eval.options import EvalConfig
    from talas.methods import METHODS
    from talas.models.router import RouterConfig

    general = {f.name: f.metadata["group"] for f in option_fields(CacheConfig)}
    assert general["method"] == "method" and not [n for n, g in general.items() if g == "method" and n != "method"]
    for cls in [*(m.config_class for m in METHODS.values()), EvalConfig, RouterConfig]:
        for f in option_fields(cls):
            assert f.metadata["group"] in GROUPS, (cls.__name__, f.name)
            assert f.metadata["group"] == general.get(f.name, f.metadata["group"]) or cls in (EvalConfig, RouterConfig), (cls.__name__, f.name)


def test_cache_help_lists_only_data_teacher_and_cache_options(capsys):
    text = help_of(["cache", "--help"], capsys)
    for flag in ("--train_data_path", "--teacher_model_name", "--pooling_method", "--cache_path", "--max_length", "--device",
                 "--list", "--verify", "--quiet"):
        assert f"{flag} " in text, flag
    for flag in ("--learning_rate", "--batch_size", "--epochs", "--w_kd", "--student_model_name", "--save_dir"):
        assert f"{flag} " not in text, flag
    assert len(text.splitlines()) < 140


def test_train_help_is_grouped_and_names_the_method_help(capsys):
    text = help_of(["train", "--help"], capsys)
    for heading in ("command:", "data:", "student model:", "teacher model:", "teacher cache:", "training:", "method talas:",
                    "output, checkpoints and logs:"):
        assert f"\n{heading}\n" in text, heading
    assert "`talas train --method X --help`" in " ".join(text.split())
    assert text.index("\ntraining:\n") < text.index("\n  --learning_rate ") < text.index("\nmethod talas:\n") < text.index("\n  --w_kd ")
    assert "--kd_rate " not in text


def test_train_help_of_another_method_lists_its_options(capsys):
    text = help_of(["train", "--method", "dskd", "--help"], capsys)
    assert "\nmethod dskd:\n" in text and "--kd_rate " in text and "--projector_lr " in text
    assert "--w_kd " not in text and "--cache_path " not in text  # TALAS's and the cache's: DSKD has neither


@pytest.mark.parametrize("switch,shown", [([], {"info", "warning"}), (["--quiet"], {"warning"}),
                                          (["--verbose"], {"debug", "info", "warning"})])
def test_quiet_and_verbose_set_what_the_library_logs_show(monkeypatch, capsys, switch, shown):
    import logging

    import talas.cli.train

    def run(argv):
        log = logging.getLogger("talas.train.loop")
        log.debug("debug line")
        log.info("info line")
        log.warning("warning line")
        return 0

    monkeypatch.setattr(talas.cli.train, "main", run)
    assert cli.main(["train", *switch]) == 0
    out = capsys.readouterr().out
    assert {level for level in ("debug", "info", "warning") if f"{level} line" in out} == shown


def test_config_from_values_builds_a_checked_config_from_python():
    from talas.config import config_from_values

    cfg = config_from_values(TalasConfig, {"batch_size": "64", "w_kd": 0.8, "student_layers": "0,3", "kd_both_sides": "no"})
    assert (cfg.batch_size, cfg.w_kd, cfg.student_layers, cfg.kd_both_sides) == (64, 0.8, [0, 3], False)
    for values, message in (({"batch_size": "many"}, "my run: option 'batch_size' expects int, got 'many'."),
                            ({"batch_sise": 3}, "my run: unknown option(s) batch_sise"),
                            ({"learning_rate": -1}, "my run: --learning_rate -1 is out of range: it must be > 0."),
                            ({"kd_both_sides": "maybe"}, "my run: option 'kd_both_sides' expects bool, got 'maybe'."),
                            ({"epochs": 0}, "--epochs 0 with --max_steps 0: nothing to train.")):
        with pytest.raises(ConfigError) as caught:
            config_from_values(TalasConfig, values, "my run")
        assert message in str(caught.value) and "\n" not in str(caught.value)


def test_parse_bool_raises_a_plain_value_error():
    from talas.config import parse_bool

    assert (parse_bool("Yes"), parse_bool("0")) == (True, False)
    with pytest.raises(ValueError, match="expected true or false"):
        parse_bool("maybe")


def test_the_resolved_config_summary_shows_only_what_differs_from_the_defaults():
    from talas.config import format_config

    assert format_config(TalasConfig()) == "  (all defaults)"
    assert format_config(TalasConfig(batch_size=8, student_layers=[0, 5])) == "  student_layers = [0, 5]\n  batch_size = 8"
    # Stella's own defaults (mean pooling, its weights) are not differences; the method's name is
    assert format_config(StellaConfig(method="stella")) == "  method = 'stella'"


def test_eval_and_router_flags_come_from_their_schemas(capsys):
    from talas.cli.eval import build_parser as eval_parser
    from talas.cli.options import parse
    from talas.eval.options import EvalConfig

    cfg, _ = parse(eval_parser(), EvalConfig, ["--model", "a", "--model", "b", "--pooling", "mean", "--max_length", "64"], "talas eval")
    assert (cfg.model, cfg.pooling, cfg.max_length, cfg.device, cfg.split) == (["a", "b"], ["mean"], 64, None, "test")
    assert cli.main(["router", "--query_model", "q", "--document_model", "d"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: `talas router` needs --output_dir") and err.count("\n") == 1


def test_library_code_never_imports_the_cli():
    import ast

    for folder, _, files in os.walk(os.path.join(ROOT, "talas")):
        if os.path.relpath(folder, ROOT).split(os.sep)[:2] == ["talas", "cli"]:
            continue
        for name in (n for n in files if n.endswith(".py")):
            tree = ast.parse(open(os.path.join(folder, name), encoding="utf-8").read())
            for node in ast.walk(tree):
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                assert not any(m == "talas.cli" or m.startswith("talas.cli.") for m in modules), os.path.join(folder, name)


# ---- the seed's files: thin views of the schema ---------------------------------------------------------

#: What the seed's launchers ran (scripts/train_<method>.sh / .ps1 before they read config/seed_<method>.yaml).
SEED_RUNS = {
    "talas": {"student_pooling": "last_token", "save_dir": "checkpoints/talas", "batch_size": 128, "epochs": 5, "learning_rate": 2e-5, "max_length": 256,
              "temperature": 0.05},
    "stella": {"save_dir": "checkpoints/stella", "matryoshka_dims": [1024, 512, 256, 128], "batch_size": 128, "epochs": 1,
               "stage1_lr": 1e-4, "stage2_lr": 8e-5, "stage3_lr": 8e-5, "max_length": 256},
    "dskd": {"save_dir": "checkpoints/dskd", "batch_size": 32, "epochs": 1, "learning_rate": 2e-4, "max_length": 128,
             "student_pooling": "mean", "kd_rate": 0.5, "kd_temperature": 2.0, "projector_lr": 1e-3},
    "cdm": {"save_dir": "checkpoints/cdm", "batch_size": 32, "epochs": 1, "learning_rate": 2e-4, "max_length": 128,
            "temperature": 0.05, "w_task": 0.9, "w_kd": 0.1},
    "emo": {"save_dir": "checkpoints/emo", "batch_size": 32, "epochs": 1, "learning_rate": 2e-4, "max_length": 128,
            "student_pooling": "mean", "alpha": 0.5, "w_ira": 0.1, "w_ot": 1.0, "ot_epsilon": 0.1, "ot_max_iter": 100,
            "projection_lr": 1e-3},
}
# Every seed pooled its teacher's last token (the schema's default is now "auto").
SEED_MODELS = {"pooling_method": "last_token", "train_data_path": "data/train/distill_texts_clean.csv", "student_model_name": "bert-base-uncased",
               "teacher_model_name": "Qwen/Qwen3-Embedding-0.6B"}


def launcher_config(tmp_path, monkeypatch, method, *flags, **env):
    """The config scripts/train_<method>.sh runs main.py with (a stand-in Python records the arguments)."""
    from talas.cli.train import resolve

    fake = tmp_path / "python"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path}/argv\n')
    fake.chmod(0o755)
    clean = {k: v for k, v in os.environ.items() if k not in ("TRAIN_DATA", "STUDENT", "TEACHER", "SAVE_DIR", "DIMS")}
    subprocess.run([os.path.join(ROOT, "scripts", f"train_{method}.sh"), *flags], env={**clean, "PY": str(fake), **env}, check=True)
    argv = (tmp_path / "argv").read_text().splitlines()
    assert argv[0] == "main.py"
    monkeypatch.chdir(ROOT)  # the launcher runs from the repository root
    return resolve(argv[1:])


@pytest.mark.parametrize("method", sorted(SEED_RUNS))
def test_each_launcher_runs_the_seed_settings(tmp_path, monkeypatch, method):
    from talas.config import config_dict
    from talas.methods import get_method

    cfg = launcher_config(tmp_path, monkeypatch, method)
    expected = get_method(method).config_class(method=method, **SEED_MODELS, **SEED_RUNS[method])
    assert config_dict(cfg) == {**config_dict(expected), "config": f"config/seed_{method}.yaml"}


def test_launcher_variables_and_the_callers_flags_override(tmp_path, monkeypatch):
    cfg = launcher_config(tmp_path, monkeypatch, "stella", "--epochs", "3", "--save_dir", "mine", TRAIN_DATA="my data.csv",
                          STUDENT="s", TEACHER="t", SAVE_DIR="theirs", DIMS="384,192")
    assert (cfg.train_data_path, cfg.student_model_name, cfg.teacher_model_name) == ("my data.csv", "s", "t")
    assert (cfg.save_dir, cfg.epochs, cfg.matryoshka_dims, cfg.method) == ("mine", 3, [384, 192], "stella")


@pytest.mark.parametrize("method", sorted(SEED_RUNS))
def test_the_powershell_launchers_share_the_recipe(method):
    # No PowerShell here to run them: each passes its method and the caller's flags to the shared body,
    # which reads the same recipe file as the .sh launchers.
    text = open(os.path.join(ROOT, "scripts", f"train_{method}.ps1"), encoding="utf-8").read()
    assert f'"train_method.ps1") -Method {method} ' in text and "-Extra $args" in text
    shared = open(os.path.join(ROOT, "scripts", "train_method.ps1"), encoding="utf-8").read()
    assert '"config/seed_$Method.yaml"' in shared and "main.py @Flags @Before @Extra" in shared


@pytest.mark.parametrize("method", sorted(SEED_RUNS))
def test_seed_config_modules_export_every_option_default(method):
    from e2e_helpers import seed_config

    from talas.config import config_dict
    from talas.methods import get_method

    module = seed_config(f"{method}_config")
    for name, value in config_dict(get_method(method).config_class()).items():
        # "auto" poolings show the seed's value (config/__init__.py), the rest the schema's default.
        seed = "last_token" if name in ("pooling_method", "student_pooling") and value == "auto" else value
        assert getattr(module, name) == seed, name
