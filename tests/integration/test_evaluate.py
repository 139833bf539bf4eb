"""Evaluation suite: metrics on hand-computed values, task declarations, the run, and `talas eval` end to end.

    .venv/bin/pytest tests/integration/test_evaluate.py -q
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from talas.cli.eval import main
from talas.errors import ConfigError, DataError, ModelError
from talas.eval import metrics
from talas.eval.evaluate import evaluate
from talas.eval.task_file import load_tasks

# --- metrics: values worked out by hand -------------------------------------------------------


def test_cosine_rows_including_a_zero_vector():
    a = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [3.0, 4.0]])
    b = np.array([[0.0, 1.0], [2.0, 2.0], [1.0, 0.0], [4.0, 3.0]])
    np.testing.assert_allclose(metrics.cosine_rows(a, b), [0.0, 1.0, 0.0, 24 / 25])


def test_sts_scores_known_values():
    # Ranks of gold 1 2 4 3 vs 1 2 3 4: sum d^2 = 2, rho = 1 - 6*2/(4*15) = 0.8. Pearson: cov 0.4 / sqrt(0.05*5) = 0.8.
    sims = np.array([0.1, 0.2, 0.3, 0.4])
    scores = metrics.sts_scores(sims, np.array([1.0, 2.0, 4.0, 3.0]))
    assert scores["spearman"] == pytest.approx(80.0)
    assert scores["pearson"] == pytest.approx(80.0)
    # Monotone but not linear: Spearman 100; Pearson 1.45 / sqrt(0.05 * 48.75).
    scores = metrics.sts_scores(sims, np.array([1.0, 2.0, 4.0, 10.0]))
    assert scores["spearman"] == pytest.approx(100.0)
    assert scores["pearson"] == pytest.approx(100 * 1.45 / np.sqrt(0.05 * 48.75))


def test_sts_scores_constant_prediction_is_zero_not_nan():
    assert metrics.sts_scores(np.ones(4), np.array([1.0, 2.0, 3.0, 4.0])) == {"spearman": 0.0, "pearson": 0.0}


def test_best_threshold_ties_go_to_the_lowest_threshold():
    # Sorted: 0.1 neg, 0.35 pos, 0.4 neg, 0.8 pos. Cutting after 0.1 or after 0.4 both get 3/4 right.
    threshold, accuracy = metrics.best_threshold(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
    assert threshold == pytest.approx(0.225)
    assert accuracy == pytest.approx(75.0)


def test_best_threshold_never_splits_equal_similarities():
    # Cutting between the two 0.5s would be 100% accurate, but no threshold can do it.
    threshold, accuracy = metrics.best_threshold(np.array([0.5, 0.5, 0.9]), np.array([0, 1, 1]))
    assert accuracy == pytest.approx(200 / 3)
    assert threshold == pytest.approx(-0.5)  # below everything: all predicted positive


def test_pair_classification_transfers_the_validation_threshold_to_test():
    tune_sims, tune_pos = np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])  # threshold 0.225
    test_sims, test_pos = np.array([0.2, 0.3, 0.5, 0.1]), np.array([1, 0, 1, 0])
    scores = metrics.pair_classification_scores(tune_sims, tune_pos, test_sims, test_pos)
    # Predictions at 0.225: F T T F -> 2/4 right (tuning on test itself would pick 0.15 and get 3/4).
    assert scores["threshold"] == pytest.approx(0.225)
    assert scores["threshold_accuracy"] == pytest.approx(75.0)
    assert scores["accuracy"] == pytest.approx(50.0)
    assert scores["f1"] == pytest.approx(50.0)  # precision 1/2, recall 1/2
    # Ranking 0.5 pos, 0.3 neg, 0.2 pos, 0.1 neg: AP = (1/1 + 2/3) / 2.
    assert scores["ap"] == pytest.approx(100 * (1 + 2 / 3) / 2)


def test_binary_f1_without_true_positives_is_zero():
    assert metrics.binary_f1(np.array([1, 0, 0]), np.array([0, 1, 0])) == 0.0


def test_macro_f1_known_value_matches_scikit_learn():
    from sklearn.metrics import f1_score

    predicted, gold = np.array(["a", "a", "b", "c"]), np.array(["a", "b", "b", "c"])
    # a: P 1/2 R 1 -> 2/3; b: P 1 R 1/2 -> 2/3; c: 1.
    assert metrics.macro_f1(predicted, gold) == pytest.approx(100 * (2 / 3 + 2 / 3 + 1) / 3)
    assert metrics.macro_f1(predicted, gold) == pytest.approx(100 * f1_score(gold, predicted, average="macro"))


def test_classification_scores_symmetric_data_puts_the_boundary_at_zero():
    train_x = np.array([[-2.0], [-1.0], [1.0], [2.0]])
    train_y = np.array(["neg", "neg", "pos", "pos"])
    test_x = np.array([[-1.5], [0.5], [3.0]])
    scores = metrics.classification_scores(train_x, train_y, test_x, np.array(["neg", "neg", "pos"]))
    # Predicted neg, pos, pos: 2/3 right; per class F1 2/3 and 2/3.
    assert scores["accuracy"] == pytest.approx(200 / 3)
    assert scores["macro_f1"] == pytest.approx(200 / 3)
    assert scores["converged"] is True


# --- task declarations -------------------------------------------------------------------------


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> str:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


PAIRS = [
    ["a man is playing a guitar", "a man plays the guitar", 0, 4.8, "music"],
    ["the cat sits on the mat", "a cat is sitting on a mat", 0, 4.5, "animals"],
    ["my card payment was declined", "how do i reset my pin", 1, 1.0, "bank"],
    ["two dogs run across the field", "the stock market fell sharply", 1, 0.2, "animals"],
    ["children are playing in the park", "kids play in a park", 0, 4.2, "people"],
    ["a plane is taking off", "the woman slices onions", 1, 0.1, "people"],
    ["i feel happy and relaxed today", "i feel happy today", 0, 3.9, "people"],
    ["how do i reset my pin", "my card payment was declined", 1, 1.5, "bank"],
]


def user_task_file(folder: Path, score_column: str = "similarity", long_text: bool = False) -> str:
    """A user's own tasks: other column names than the bundled files, and label 0 as the positive class.

    ``long_text`` adds a test text longer than the tiny model's 128 positions (it must be truncated).
    """
    header = ["question", "answer", "is_match", "similarity", "topic"]
    write_csv(folder / "pairs_val.csv", header, PAIRS[:6])
    write_csv(folder / "pairs_test.csv", header, PAIRS[2:])
    write_csv(folder / "intents_train.csv", ["utterance", "intent"], [[r[0], r[4]] for r in PAIRS])
    long_rows = [[" ".join(["the cat sits on the mat"] * 60), "animals"]] if long_text else []
    write_csv(folder / "intents_test.csv", ["utterance", "intent"], [[r[1], r[4]] for r in PAIRS] + long_rows)
    path = folder / "my_tasks.yaml"
    path.write_text(
        "tasks:\n"
        "  - name: my-sts\n    type: sts\n    files: {validation: pairs_val.csv, test: pairs_test.csv}\n"
        f"    text_columns: [question, answer]\n    score_column: {score_column}\n    score_range: [0, 5]\n"
        "  - name: my-pairs\n    type: pair_classification\n    files: {validation: pairs_val.csv, test: pairs_test.csv}\n"
        "    text_columns: [question, answer]\n    label_column: is_match\n    positive_label: 0\n"
        "  - name: my-intents\n    type: classification\n    files: {train: intents_train.csv, test: intents_test.csv}\n"
        "    text_columns: [utterance]\n    label_column: intent\n",
        encoding="utf-8",
    )
    return str(path)


def test_bundled_suite_declares_every_task_with_its_label_convention():
    tasks = {t.name: t for t in load_tasks(None)}  # also checks that every declared file exists
    assert {n: t.type for n, t in tasks.items()} == {
        "STS-B": "sts", "SICK-R": "sts", "MRPC": "pair_classification", "QNLI": "pair_classification",
        "RTE": "pair_classification", "Banking77": "classification", "Emotion": "classification",
        "TweetEval-sentiment": "classification", "QNLI-retrieval": "retrieval",
    }
    assert [tasks[n].positive_label for n in ("MRPC", "QNLI", "RTE")] == ["1", "0", "0"]
    assert tasks["QNLI"].read("validation").targets.mean() == pytest.approx(515 / 1000)  # label 0 = entailment
    assert "validation" not in tasks["TweetEval-sentiment"].files


def test_wrong_column_is_one_error_listing_the_columns_found(tmp_path):
    task = load_tasks(user_task_file(tmp_path, score_column="score"), ["my-sts"])[0]
    with pytest.raises(DataError, match=r"missing column\(s\) 'score'; columns found: 'question', 'answer', 'is_match'"):
        task.read("test")


@pytest.mark.parametrize(
    "entry, message",
    [
        ("type: regression\n    files: {test: x.csv}", "type 'regression' is not one of"),
        ("type: sts\n    files: {test: x.csv}\n    text_columns: [a, b]\n    score_column: s\n    colour: red",
         "unknown key"),
        ("type: pair_classification\n    files: {test: x.csv}\n    text_columns: [a, b]\n    label_column: l\n"
         "    positive_label: 1", "needs a validation file"),
        ("type: classification\n    files: {train: x.csv, dev: y.csv}\n    text_columns: [t]\n    label_column: l",
         "'files' must map split names"),
        ("type: classification\n    files: {train: x.csv}\n    text_columns: [a, b]\n    label_column: l",
         "text_columns must list 1"),
        ("type: pair_classification\n    files: {validation: x.csv}\n    text_columns: [a, b]\n    label_column: l\n"
         "    positive_label: yes", "as a boolean; quote"),
    ],
)
def test_malformed_declarations_are_config_errors(tmp_path, entry, message):
    path = tmp_path / "tasks.yaml"
    path.write_text(f"tasks:\n  - name: t\n    {entry}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_tasks(str(path))


def test_unknown_task_name_lists_the_declared_ones(tmp_path):
    with pytest.raises(ConfigError, match="tasks declared: my-sts, my-pairs, my-intents"):
        load_tasks(user_task_file(tmp_path), ["my-stss"])


def test_missing_file_points_at_data_dir(tmp_path):
    with pytest.raises(DataError, match="--data_dir"):
        load_tasks(None, ["STS-B"], data_dir=str(tmp_path))


def test_data_dir_overrides_where_relative_paths_resolve(tmp_path):
    text = Path(user_task_file(tmp_path)).read_text()
    (tmp_path / "elsewhere").mkdir()
    moved = tmp_path / "elsewhere" / "tasks.yaml"
    moved.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match="does not exist"):
        load_tasks(str(moved))
    assert load_tasks(str(moved), data_dir=str(tmp_path))[0].files["test"] == os.path.join(str(tmp_path), "pairs_test.csv")


def test_positive_label_absent_from_the_file(tmp_path):
    path = Path(user_task_file(tmp_path))
    path.write_text(path.read_text().replace("positive_label: 0", "positive_label: maybe"), encoding="utf-8")
    with pytest.raises(DataError, match="positive_label 'maybe'.*holds '0', '1'"):
        load_tasks(str(path), ["my-pairs"])[0].read("validation")


def test_score_outside_the_declared_range(tmp_path):
    path = Path(user_task_file(tmp_path))
    path.write_text(path.read_text().replace("score_range: [0, 5]", "score_range: [1, 5]"), encoding="utf-8")
    with pytest.raises(DataError, match=r"line 5: score 0.2 is outside the declared score_range \[1.0, 5.0\]"):
        load_tasks(str(path), ["my-sts"])[0].read("validation")


# --- evaluate(): the run around an encode callable ---------------------------------------------


class BagOfWords:
    """A deterministic stand-in encoder (the model is not under test here) that records its inputs."""

    def __init__(self):
        self.seen: list[str] = []
        self.vocab: dict[str, int] = {}

    def __call__(self, texts: list[str]) -> torch.Tensor:
        self.seen += texts
        out = torch.zeros(len(texts), 64)
        for row, text in enumerate(texts):
            for word in text.split():
                out[row, self.vocab.setdefault(word, len(self.vocab)) % 64] += 1.0
        return out


def test_evaluate_encodes_each_unique_text_once_and_averages_main_scores(tmp_path):
    tasks = load_tasks(user_task_file(tmp_path))
    encoder = BagOfWords()
    result = evaluate(encoder, tasks, split="test", progress=False)
    expected = {r[0] for r in PAIRS} | {r[1] for r in PAIRS}  # test, validation (threshold) and train texts
    assert sorted(encoder.seen) == sorted(expected)
    assert result["n_texts"] == len(expected)
    scores = result["tasks"]
    assert scores["my-pairs"]["tune_split"] == "validation" and scores["my-pairs"]["report_split"] == "test"
    # two training texts ("my card payment…", "how do i reset my pin") are also test texts: held out
    assert (scores["my-intents"]["train_rows"], scores["my-intents"]["train_rows_dropped"]) == (len(PAIRS) - 2, 2)
    main = {name: s[s["main_score"]] for name, s in scores.items()}
    assert result["averages"]["sts"] == pytest.approx(main["my-sts"])
    assert result["averages"]["overall"] == pytest.approx(np.mean(list(main.values())))
    # Word overlap ranks the paraphrases first, so the ranking metrics are perfect on these pairs.
    assert scores["my-pairs"]["ap"] == pytest.approx(100.0)
    json.dumps(result)  # the training loop writes it as is


def test_validation_split_skips_tasks_without_one_and_tunes_on_validation(tmp_path):
    result = evaluate(BagOfWords(), load_tasks(user_task_file(tmp_path)), split="validation", progress=False)
    assert result["skipped"] == {"my-intents": "no validation file declared"}
    assert result["tasks"]["my-pairs"]["report_split"] == "validation"
    assert result["tasks"]["my-pairs"]["rows"] == 6


def test_max_train_samples_is_a_seeded_subset(tmp_path):
    tasks = load_tasks(user_task_file(tmp_path), ["my-intents"])
    seen = []
    for seed in (0, 0, 1):
        encoder = BagOfWords()
        result = evaluate(encoder, tasks, max_train_samples=5, seed=seed, progress=False)
        assert result["tasks"]["my-intents"]["train_rows"] == 5
        seen.append(sorted(encoder.seen))
    assert seen[0] == seen[1] and seen[0] != seen[2]
    everything = BagOfWords()
    evaluate(everything, tasks, progress=False)
    assert len(everything.seen) > len(seen[0])  # rows left out of training are not even encoded


def test_bad_encoder_outputs_are_model_errors(tmp_path):
    tasks = load_tasks(user_task_file(tmp_path), ["my-sts"])
    with pytest.raises(ModelError, match="expected"):
        evaluate(lambda texts: np.zeros((len(texts) - 1, 4)), tasks, progress=False)
    with pytest.raises(ModelError, match="NaN"):
        evaluate(lambda texts: np.full((len(texts), 4), np.nan), tasks, progress=False)


# --- talas eval end to end on a tiny random model ----------------------------------------------


def test_eval_cli_runs_a_user_task_file_and_writes_json_and_markdown(tmp_path, tiny_bert, capsys):
    out = tmp_path / "out"
    rc = main(["--model", str(tiny_bert), "--pooling", "mean", "--tasks", user_task_file(tmp_path, long_text=True),
               "--output_dir", str(out), "--no_progress", "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    report = json.loads((out / "eval_results.json").read_text())
    run = report["models"][0]
    assert run["pooling"] == "mean" and run["kind"] == "transformers" and run["dim"] == 32
    assert run["max_length"] == 128  # the default 256 cut to the tiny model's position table
    assert set(run["results"]["tasks"]) == {"my-sts", "my-pairs", "my-intents"}
    # pair classification recomputed from the model's own vectors: threshold from validation, accuracy on test
    from talas.models.encoder import Encoder

    encoder = Encoder.load(str(tiny_bert), "mean", 128)

    def similarities(rows):
        a, b = (torch.nn.functional.normalize(encoder.encode([r[i] for r in rows]), dim=-1) for i in (0, 1))
        return (a * b).sum(-1).numpy()

    validation, test = PAIRS[:6], PAIRS[2:]
    threshold, _ = metrics.best_threshold(similarities(validation), np.array([r[2] == 0 for r in validation]))
    predicted = similarities(test) >= threshold
    pairs = run["results"]["tasks"]["my-pairs"]
    assert pairs["threshold"] == pytest.approx(threshold, abs=1e-6)
    assert pairs["accuracy"] == pytest.approx(100 * np.mean(predicted == np.array([r[2] == 0 for r in test])))
    assert report["settings"]["logreg_solver"] == "lbfgs" and "scikit-learn" in report["versions"]
    assert [t["positive_label"] for t in report["tasks"] if t["name"] == "my-pairs"] == ["0"]
    markdown = (out / "eval_results.md").read_text()
    assert "| my-pairs | pair_classification | ap |" in markdown
    assert not (out / "comparison.png").exists()


def test_eval_cli_compares_two_models_with_a_chart(tmp_path, tiny_bert):
    st_folder = tmp_path / "st_model"
    from sentence_transformers import SentenceTransformer

    SentenceTransformer(str(tiny_bert), device="cpu").save(str(st_folder))  # Transformer + mean Pooling
    out = tmp_path / "out"
    rc = main(["--model", str(st_folder), "--model", str(tiny_bert), "--pooling", "cls", "--name", "st", "--name", "cls",
               "--tasks", user_task_file(tmp_path), "--output_dir", str(out), "--no_progress", "--device", "cpu"])
    assert rc == 0
    runs = json.loads((out / "eval_results.json").read_text())["models"]
    assert [(r["name"], r["kind"], r["pooling"]) for r in runs] == [
        ("st", "sentence-transformers", "modules.json"), ("cls", "transformers", "cls")]
    assert "| task | type | metric | st | cls |" in (out / "eval_results.md").read_text()
    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_cli_prints_user_errors_and_returns_2(tmp_path, tiny_bert, capsys):
    tasks = user_task_file(tmp_path, score_column="score")
    args = ["--model", str(tiny_bert), "--pooling", "mean", "--tasks", tasks, "--output_dir", str(tmp_path / "o")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "columns found: 'question', 'answer'" in err and "Traceback" not in err
    with pytest.raises(DataError):
        main([*args, "--debug"])
    (tmp_path / "good").mkdir()
    good = user_task_file(tmp_path / "good")
    assert main(["--model", str(tiny_bert), "--tasks", good]) == 2
    assert "pass --pooling" in capsys.readouterr().err
    assert main(["--model", str(tiny_bert), "--model", str(tiny_bert), "--pooling", "mean", "--tasks", good]) == 2
    assert "--name once per --model" in capsys.readouterr().err
    assert main(["--model", str(tiny_bert), "--pooling", "mean", "--max_length", "512", "--tasks", good]) == 2
    assert "pass at most 128" in capsys.readouterr().err


def test_classifier_never_trains_on_the_texts_it_is_scored_on(tmp_path):
    """The bundled Banking77 validation file lies inside its training file: those rows leave the training split."""
    banking = load_tasks(None, ["Banking77"])
    scored = set(banking[0].read("validation").texts[0])
    train_texts = banking[0].read("train").texts[0]
    held_out = sum(1 for text in train_texts if text not in scored)
    assert held_out <= len(train_texts) - 1000  # the overlap this guards against is really in the data
    result = evaluate(BagOfWords(), banking, split="validation", max_train_samples=None, progress=False)
    scores = result["tasks"]["Banking77"]
    assert scores["train_rows"] == held_out and scores["train_rows_dropped"] == len(train_texts) - held_out
    # the test split shares no text with train: nothing is dropped there
    result = evaluate(BagOfWords(), banking, split="test", max_train_samples=10, progress=False)
    assert result["tasks"]["Banking77"]["train_rows_dropped"] == 0


def test_eval_on_a_missing_model_folder_says_it_does_not_exist(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    good = user_task_file(tmp_path)
    for missing in ("runs/talas/model", "./student", "student"):
        assert main(["--model", missing, "--tasks", good]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err, err
        assert repr(missing) in err and "modules.json" not in err, err
        assert "does not exist" in err or "is not a folder here" in err, err


def test_pair_threshold_is_chosen_on_validation_and_applied_to_test(tmp_path):
    """Texts are 2-d unit vectors at chosen angles, so each pair's cosine is set by hand (as in the metrics test
    above): validation picks 0.225; tuning on test itself would pick 0.15 and score 75 instead of 50."""
    vectors = {}

    def pair(name, cosine, positive):
        vectors[f"{name}-a"] = [1.0, 0.0]
        vectors[f"{name}-b"] = [cosine, float(np.sqrt(1 - cosine**2))]
        return [f"{name}-a", f"{name}-b", int(positive)]

    header = ["s1", "s2", "label"]
    write_csv(tmp_path / "v.csv", header, [pair(f"v{i}", c, p) for i, (c, p) in enumerate([(0.1, 0), (0.4, 0), (0.35, 1), (0.8, 1)])])
    write_csv(tmp_path / "t.csv", header, [pair(f"t{i}", c, p) for i, (c, p) in enumerate([(0.2, 1), (0.3, 0), (0.5, 1), (0.1, 0)])])
    (tmp_path / "tasks.yaml").write_text(
        "tasks:\n  - name: p\n    type: pair_classification\n    files: {validation: v.csv, test: t.csv}\n"
        "    text_columns: [s1, s2]\n    label_column: label\n    positive_label: 1\n", encoding="utf-8")
    result = evaluate(lambda texts: np.array([vectors[t] for t in texts]), load_tasks(str(tmp_path / "tasks.yaml")),
                      progress=False)
    scores = result["tasks"]["p"]
    assert scores["threshold"] == pytest.approx(0.225) and scores["accuracy"] == pytest.approx(50.0)
