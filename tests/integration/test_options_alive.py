"""Every option is alive: each option not marked bookkeeping changes what a tiny training run learns.

The walk is generic: every method's config dataclass (``config_class`` in talas.methods.METHODS),
every field whose metadata does not say ``bookkeeping``. An option declared once for several methods
(same name, default and help: the shared data, model and optimiser options) is walked on the first
method that has it; a method that declares it again (its own default or help) walks it again.

For each option, `talas train` runs a tiny BERT student and a tiny Qwen3 teacher for three steps at
the current value and at another valid one (every other choice of a choice option), and the two runs
must differ in a logged loss term or an exported weight. Both runs must succeed, so a mistyped
alternative cannot pass by failing. The other value comes from the option's type and range unless
SPECIAL gives it, with a scenario (flags for both runs) when the option only matters in one.
Options that choose how rather than what (the cached or the online teacher; "auto" against what it
resolves to on the CPU) must instead train the same. KNOWN_FAULTS lists what fails today, and why.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import pytest
import torch
from accelerate.state import AcceleratorState
from safetensors.torch import load_file
from tiny_models import build_bert, build_qwen3  # noqa: E402

from talas import cli
from talas.methods import METHODS

# Long enough that EMO keeps >= 3 mapped content tokens per text (its CKA needs 3), with capitals,
# punctuation, an accent and words the tiny tokenizers never saw: the two split these differently,
# so CDM's and EMO's alignments are not one token to one token, and CDM's entropy weights move some
# of its DTW paths (texts 3, 4 and 9).
SENTENCES = [
    "A man is playing a guitar, and the cat sits on the mat!",
    "a woman is slicing an onion while two dogs run across the field",
    "The stock market fell sharply; my card payment was declined.",
    "the quick brown fox jumps over the lazy dog in the park",
    "zebras quietly juxtapose vexing wizardry while a man is playing a guitar",
    "Two dogs run across the field and a man is playing a guitar",
    "the cat sits on the mat, a woman is slicing an onion.",
    "My card payment was declined because the stock market fell sharply",
    "children are playing in the park; i feel happy and relaxed today",
    "playing slicing taking sitting running relaxing: how do i reset my pin?",
    "The man plays guitar on stage! An onion is being cut, é",
    "two dogs and the cat are playing in the park today",
]
TEACHER_WIDTH = 48  # tiny_models.build_qwen3's hidden size

# Three steps: one more than cosine and linear decay need to differ (both give 1 and 0.5 at steps 0, 1).
BASE = ("--batch_size", "4", "--max_steps", "3", "--max_length", "32", "--learning_rate", "1e-3",
        "--device", "cpu", "--log_steps", "1")
METHOD_BASE = {"stella": ("--matryoshka_dims", f"{TEACHER_WIDTH},{TEACHER_WIDTH // 2}")}  # widths <= the tiny teacher's
EPOCHS_ONLY = ("--max_steps", "0", "--epochs", "1")  # one pass of 3 batches, so epoch counts matter


@dataclass(frozen=True)
class Case:
    """How to exercise one option: the other ``values`` to try, ``scenario`` flags given to both runs
    (where the option only matters in some set-up), ``default_fails``: the run at the current value
    is expected to fail (the option turns a refusal into training); ``same``: the option chooses how,
    not what (the two runs must train the same, up to float rounding)."""

    values: tuple = ()
    scenario: tuple[str, ...] = ()
    default_fails: bool = False
    same: bool = False
    why: str = ""


# Options that the generic rule (type, choices, range) cannot exercise on the tiny set-up, keyed by
# "option" or "method.option". Paths in braces are filled from the test's files and models.
SPECIAL: dict[str, Case] = {
    "train_data_path": Case(("{texts2}",), why="another file of texts"),
    "text_column": Case(("alt",), ("--train_data_path", "{columns}"), why="a file whose columns would otherwise be read as triplets"),
    "anchor_column": Case(("alt",), ("--train_data_path", "{columns}"), why="a file with a second candidate column"),
    "positive_column": Case(("alt",), ("--train_data_path", "{columns}"), why="a file with a second candidate column"),
    "negative_column": Case(("alt",), ("--train_data_path", "{columns}"), why="a file with a second candidate column"),
    "label_column": Case(("judgement",), ("--train_data_path", "{columns}"),
                         why="NLI labels in a column detection does not guess: contradictions become hard negatives"),
    "skip_bad_rows": Case((True,), ("--train_data_path", "{bad_rows}"), default_fails=True,
                          why="a file with an empty text: refused by default, trained without it when skipping"),
    "dataset_split": Case(("other",), ("--train_data_path", "{splits}"), why="a save_to_disk folder with two splits of other texts"),
    "max_train_samples": Case((8,), why="fewer rows than the 12 of the file, still two batches"),
    "student_model_name": Case(("{student2}",), why="another tiny student (other initial weights)"),
    "teacher_model_name": Case(("{teacher2}",), why="another tiny teacher (other weights)"),
    "student_layers": Case(([1],), why="keep the second of the tiny student's two layers only"),
    "student_dropout": Case((0.3,), why="-1 means the model's own dropout; 0 is refused with single texts"),
    "teacher_prompt": Case(("Query: ",), why="free text"),
    "batch_size": Case((2,), why="the base runs use 4 (the default 128 is more than the 12 texts)"),
    "max_length": Case((8,), why="the base runs use 32, which no text reaches"),
    "learning_rate": Case((3e-3,), why="the base runs use 1e-3"),
    "epochs": Case((2,), EPOCHS_ONLY, why="only matters without --max_steps"),
    "max_steps": Case((2,), EPOCHS_ONLY, why="0 (all epochs) is the default; the base runs use 3"),
    "warmup_ratio": Case((0.5,), why="three steps need a ratio of 1/3 or more for one warm-up step"),
    "max_grad_norm": Case((1e-3,), why="the tiny models' gradient norms stay below the default 1, so clip harder"),
    "projection_lr": Case((1e-2,), why="0 (= --learning_rate) is TALAS's default; the generic 0.5 would diverge"),
    "cache_teacher": Case(same=True, why="cached or online, the teacher vectors are the same"),
    "talas.projection_init_texts": Case((4,), why="fewer than the 12 texts (the default takes them all)"),
    "talas.contrast_temperature": Case((0.1,), ("--w_contrast", "0.5"), why="only matters with --w_contrast > 0"),
    "stella.matryoshka_dims": Case(([TEACHER_WIDTH, TEACHER_WIDTH // 4],), why="other widths than the base runs' (the "
                                   "default's exceed the tiny teacher)"),
    "stella.resim_max_pairs": Case((3,), why="a batch of 4 texts has 6 pairs: subsample below that"),
    "stella.unfreeze_layers": Case((1,), why="the tiny student has 2 layers (the default 3 trains both)"),
    **{f"stella.stage{n}_epochs": Case((2,), EPOCHS_ONLY, why="only matters without --max_steps") for n in (1, 2, 3)},
    "dskd.projector_init_texts": Case((4,), ("--projector_init", "ridge"), why="only matters with the ridge start"),
    "emo.projection_init_texts": Case((4,), ("--projection_init", "ridge"), why="only matters with the ridge start"),
    "emo.ira_layers": Case((1,), why="the tiny student has 2 layers (the default)"),
    "emo.top_m_divisor": Case((1,), why="every mapped token instead of a third"),
    "emo.ot_max_iter": Case((2,), why="Sinkhorn converges well before the default 100 on the tiny texts"),
    "emo.ot_tol": Case((0.1,), why="a tolerance that stops Sinkhorn early"),
}

# Options walked but not exercised, and why.
SKIPPED: dict[str, str] = {
    "method": "selects the method and so the config class itself: every method is walked",
    "dataset_config": "chooses a configuration of a hub dataset, and the tests have no hub (test_data_formats "
                      "checks that it reaches datasets.load_dataset)",
}
# Values that mean the current one here (auto resolves to them: on the CPU the tests run on, and for
# their BERT student and Qwen3 teacher): checked to train the same.
SAME_ON_CPU = {("teacher_dtype", "float32"), ("mixed_precision", "no"), ("student_pooling", "mean"),
               ("pooling_method", "last_token")}
# Known faults, keyed by "method.option" or "method.option=value": options that claim to change
# training (not bookkeeping) but cannot, values that fail, and "same" cases that differ. The strict
# xfail turns red once one is fixed or marked bookkeeping: then remove its entry.
KNOWN_FAULTS: dict[str, str] = {
}


def current_value(f: dataclasses.Field) -> Any:
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def walked_fields(cls: type):
    """The options of a config class, nested dataclasses included."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if isinstance(hints[f.name], type) and dataclasses.is_dataclass(hints[f.name]):
            yield from walked_fields(hints[f.name])
        else:
            yield f


def generic_values(f: dataclasses.Field, value: Any) -> tuple:
    """Other valid values from the option's choices, type and range; () when it needs a SPECIAL entry."""
    choices = f.metadata.get("choices")
    if choices:
        return tuple(c for c in choices if c != value)
    if isinstance(value, bool):
        return (not value,)
    if isinstance(value, (int, float)):
        limits = f.metadata.get("range")
        candidates = [value * 2, value + 1, 2] if isinstance(value, int) else [value * 1.5, value / 2, 0.5]
        valid = [c for c in candidates if c != value and (limits is None or c in limits)]
        return valid[:1]
    return ()


def option_cases() -> tuple[list, list]:
    """(method, option, value, Case) to run, and (method, option, reason) walked but not exercised."""
    seen, cases, skipped = set(), [], []
    for method, method_cls in METHODS.items():
        for f in walked_fields(method_cls.config_class):
            if f.metadata.get("bookkeeping"):
                continue
            declaration = (f.name, repr(current_value(f)), f.metadata.get("help"))
            if declaration in seen:
                continue
            seen.add(declaration)
            if f.name in SKIPPED:
                skipped.append((method, f.name, SKIPPED[f.name]))
                continue
            case = SPECIAL.get(f"{method}.{f.name}") or SPECIAL.get(f.name) or Case()
            values = case.values or generic_values(f, current_value(f))
            if not values:  # a new option the generic rule cannot vary: it needs a SPECIAL entry
                values = (None,)
            for value in values:
                fault = KNOWN_FAULTS.get(f"{method}.{f.name}") or KNOWN_FAULTS.get(f"{method}.{f.name}={flag_value(value)}")
                marks = [pytest.mark.xfail(strict=True, reason=fault)] if fault else []
                shown = f"={flag_value(value)}" if len(values) > 1 else ""
                exercised = dataclasses.replace(case, same=True) if (f.name, flag_value(value)) in SAME_ON_CPU else case
                cases.append(pytest.param(method, f.name, value, exercised, id=f"{method}-{f.name}{shown}", marks=marks))
    return cases, skipped


def flag_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


CASES, NOT_EXERCISED = option_cases()


@dataclass
class Outcome:
    """What a run leaves that training decides: its exit status, its logged loss terms per step (not the
    lr or timings) and the exported model's tensors."""

    rc: int
    log: list[dict]
    weights: dict[str, torch.Tensor]

    def close_to(self, other: Outcome, tol: float = 1e-5) -> bool:
        """The same up to float rounding (``tol`` on every logged value and weight)."""

        def close(a, b) -> bool:
            return abs(a - b) <= tol if isinstance(a, float) else a == b

        return (self.rc == other.rc and len(self.log) == len(other.log) and self.weights.keys() == other.weights.keys()
                and all(a.keys() == b.keys() and all(close(a[k], b[k]) for k in a) for a, b in zip(self.log, other.log, strict=True))
                and all(torch.allclose(t, other.weights[k], atol=tol, rtol=0) for k, t in self.weights.items()))

    def same_as(self, other: Outcome) -> bool:
        return (self.rc == other.rc and self.log == other.log and self.weights.keys() == other.weights.keys()
                and all(torch.equal(t, other.weights[k]) for k, t in self.weights.items()))


class Runs:
    """Runs `talas train` in its own folders, remembering each command's outcome (the default run of a
    method is shared by all its options)."""

    def __init__(self, root: Path, paths: dict[str, str]):
        self.root, self.paths, self.count, self.done = root, paths, itertools.count(), {}

    def command(self, method: str, flags: tuple[str, ...]) -> list[str]:
        argv = ["train", "--method", method, "--train_data_path", self.paths["texts"],
                "--student_model_name", self.paths["student"], "--teacher_model_name", self.paths["teacher"],
                *BASE, *METHOD_BASE.get(method, ()), *flags]
        return [a.format(**self.paths) for a in argv]

    def outcome(self, method: str, *flags: str, fresh: bool = False) -> Outcome:
        argv = self.command(method, flags)
        key = tuple(argv)
        if fresh or key not in self.done:
            self.done[key] = self.run(method, argv)
        return self.done[key]

    def run(self, method: str, argv: list[str]) -> Outcome:
        folder = self.root / f"run{next(self.count)}"
        argv = [*argv, "--save_dir", str(folder)]
        if any(f.name == "cache_path" for f in walked_fields(METHODS[method].config_class)):
            argv += ["--cache_path", str(folder / "cache" / "teacher.safetensors")]  # each run its own cache
        # Accelerate keeps one global state per process (its mixed precision included); a fresh one per
        # run, as each `talas train` process has.
        AcceleratorState._reset_state(reset_partial_state=True)
        rc = cli.main(argv)
        log_file = folder / "train_log.jsonl"
        log = []
        if log_file.exists():
            for line in log_file.read_text(encoding="utf-8").splitlines():
                record = json.loads(line)
                log.append({k: v for k, v in record.items() if k not in ("lr", "elapsed_s")})
        weights = {}
        for path in sorted((folder / "model").rglob("*.safetensors")):
            weights.update({f"{path.relative_to(folder)}:{k}": t for k, t in load_file(str(path)).items()})
        return Outcome(rc, log, weights)


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> str:
    lines = [",".join(header)] + [",".join(f'"{cell}"' for cell in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def save_splits(path: Path, **splits: list[str]) -> str:
    """A `datasets` save_to_disk folder with a one-column ``text`` dataset per split."""
    datasets.DatasetDict({name: datasets.Dataset.from_dict({"text": texts}) for name, texts in splits.items()}).save_to_disk(str(path))
    return str(path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_bert, tiny_qwen3):
    root = tmp_path_factory.mktemp("alive")
    n = len(SENTENCES)
    columns = [[SENTENCES[i], SENTENCES[(i + 1) % n], SENTENCES[(i + 5) % n], SENTENCES[(i + 7) % n],
                ("entailment", "contradiction", "neutral")[i % 3]] for i in range(n)]
    paths = {
        "student": str(tiny_bert), "teacher": str(tiny_qwen3),
        "student2": str(build_bert(root / "student2", seed=5)), "teacher2": str(build_qwen3(root / "teacher2", seed=6)),
        "texts": write_csv(root / "texts.csv", ["text"], [[s] for s in SENTENCES]),
        "texts2": write_csv(root / "texts2.csv", ["text"], [[s.upper()] for s in reversed(SENTENCES)]),
        "columns": write_csv(root / "columns.csv", ["anchor", "positive", "negative", "alt", "judgement"], columns),
        "bad_rows": write_csv(root / "bad_rows.csv", ["text"], [[s] for s in SENTENCES] + [[""]]),
        "splits": save_splits(root / "splits", train=SENTENCES, other=[s.upper() for s in reversed(SENTENCES)]),
    }
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only contend (a run takes 3x longer with them)
    yield Runs(root, paths)
    torch.set_num_threads(threads)


@pytest.mark.parametrize("method", list(METHODS))
def test_the_default_run_is_repeatable(runs, method):
    """Without this, two runs could differ by chance and every option would look alive."""
    first = runs.outcome(method)
    assert first.rc == 0 and len(first.log) >= 3 and first.weights
    assert runs.outcome(method, fresh=True).same_as(first)


@pytest.mark.parametrize("method,option,value,case", CASES)
def test_option_changes_training(runs, method, option, value, case):
    assert value is not None, (
        f"--{option} of {method}: no other value to try; give it one in SPECIAL (or mark it bookkeeping "
        "if it does not change what is trained)")
    before = runs.outcome(method, *case.scenario)
    after = runs.outcome(method, *case.scenario, f"--{option}", flag_value(value))
    assert (before.rc != 0) == case.default_fails, f"the run at the current --{option} exited with {before.rc}"
    assert after.rc == 0, f"--{option} {flag_value(value)} is refused: choose another value in SPECIAL"
    if case.same:
        assert before.close_to(after), f"--{option} {flag_value(value)} should train as the current value does ({method})"
        return
    assert not before.same_as(after), (
        f"--{option} {flag_value(value)} trains exactly as the current value does ({method}): the option is "
        "dead, or needs a scenario in SPECIAL where it matters")


def test_every_option_is_exercised_or_skipped_for_a_reason():
    """The walk found the options (a schema change that hides them would pass every case vacuously)."""
    walked = {param.values[1] for param in CASES}
    assert {"kd_rate", "w_kd", "w_sim", "alpha", "learning_rate", "temperature"} <= walked
    assert all(reason for _, _, reason in NOT_EXERCISED)
    for key in [*SPECIAL, *KNOWN_FAULTS]:
        name = key.split(".")[-1].split("=")[0]
        assert any(f.name == name for cls in METHODS.values() for f in walked_fields(cls.config_class)), (
            f"SPECIAL/KNOWN_FAULTS entry {key!r} names no option")
