"""Retrieval: metrics on hand-computed values and against trec_eval, the task type, the bundled QNLI task,
asymmetric `talas eval --query_model/--corpus_model` (width refusal, teacher-cache reuse) and `talas router`.

    .venv/bin/pytest tests/integration/test_retrieval.py -q
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from talas.cli import main as cli_main
from talas.cli.eval import main as eval_main
from talas.errors import ConfigError, DataError, ModelError
from talas.eval import metrics
from talas.eval.evaluate import evaluate
from talas.eval.task_file import load_tasks

ROOT = Path(__file__).resolve().parents[2]

# --- metrics: values worked out by hand ---------------------------------------------------------


def test_exact_search_ranks_by_cosine_and_breaks_ties_to_the_lower_row():
    # Cosines with [1, 0]: 1, 0, 0.707, 1 (same direction, longer), 0 (zero vector).
    corpus = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0], [0.0, 0.0]])
    queries = np.array([[1.0, 0.0], [0.0, -3.0]])  # second: cosines 0, -1, -0.707, 0, 0
    assert metrics.exact_search(queries, corpus, 5).tolist() == [[0, 3, 2, 1, 4], [0, 3, 4, 2, 1]]
    # k cuts through a tie (rows 0, 3, 4 all at 0 for the second query): the lowest rows win.
    assert metrics.exact_search(queries, corpus, 2).tolist() == [[0, 3], [0, 3]]
    assert metrics.exact_search(queries, corpus, 10).shape == (2, 5)  # never more than the corpus


def test_exact_search_in_blocks_equals_a_full_sort(monkeypatch):
    rng = np.random.default_rng(0)
    queries, corpus = rng.normal(size=(23, 8)), rng.normal(size=(50, 8))
    cosines = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ (corpus / np.linalg.norm(corpus, axis=1, keepdims=True)).T
    expected = np.argsort(-cosines, axis=1, kind="stable")[:, :7]
    monkeypatch.setattr(metrics, "SEARCH_BLOCK_SCORES", 120)  # 2 queries per block
    assert (metrics.exact_search(queries, corpus, 7) == expected).all()


def test_retrieval_scores_known_values():
    ranked = np.array([
        [3, 0, 2, 5, 1, 4, 6, 7, 8, 10, 9],  # graded: 0 -> 2, 5 -> 1, 9 -> 1 (rank 11)
        [1, 4, 0, 2, 3, 5, 6, 7, 8, 9, 10],  # binary: 1 at rank 1
    ])
    relevance = [{0: 2, 5: 1, 9: 1}, {1: 1}]
    scores = metrics.retrieval_scores(ranked, relevance)
    dcg = 2 / math.log2(3) + 1 / math.log2(5)  # grade 2 at rank 2, grade 1 at rank 4
    ideal = 2 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert scores["ndcg_at_10"] == pytest.approx(100 * (dcg / ideal + 1) / 2)
    assert scores["mrr_at_10"] == pytest.approx(100 * (1 / 2 + 1) / 2)
    assert scores["recall_at_10"] == pytest.approx(100 * (2 / 3 + 1) / 2)  # rank 11 is past the cut
    assert scores["recall_at_100"] == pytest.approx(100.0)


def test_a_relevant_document_past_rank_10_scores_nothing_at_10():
    scores = metrics.retrieval_scores(np.array([list(range(12))]), [{10: 1}])
    assert (scores["ndcg_at_10"], scores["mrr_at_10"], scores["recall_at_10"], scores["recall_at_100"]) == (0, 0, 0, 100)


def test_retrieval_scores_match_trec_eval():
    pytrec_eval = pytest.importorskip("pytrec_eval")  # the test extra installs it (pytrec-eval-terrier)
    rng = np.random.default_rng(1)
    queries, corpus = rng.normal(size=(40, 16)), rng.normal(size=(300, 16))
    relevance = []
    for _ in queries:  # 1-5 relevant documents per query, grades 1-3
        docs = rng.choice(len(corpus), size=rng.integers(1, 6), replace=False)
        relevance.append({int(d): int(rng.integers(1, 4)) for d in docs})
    ours = metrics.retrieval_scores(metrics.exact_search(queries, corpus, 100), relevance)
    cosines = metrics.unit_rows(queries) @ metrics.unit_rows(corpus).T
    qrels = {f"q{i}": {f"d{d}": g for d, g in grades.items()} for i, grades in enumerate(relevance)}
    run = {f"q{i}": {f"d{d}": float(cosines[i, d]) for d in range(len(corpus))} for i in range(len(queries))}
    measures = {"ndcg_cut_10": "ndcg_at_10", "recall_10": "recall_at_10", "recall_100": "recall_at_100"}
    trec = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.10,100"}).evaluate(run)
    for theirs, name in measures.items():
        assert ours[name] == pytest.approx(100 * np.mean([trec[q][theirs] for q in qrels]), abs=1e-9), name
    # trec_eval's recip_rank has no cut: truncate the run at 10 so that it means MRR@10.
    top10 = {q: dict(sorted(docs.items(), key=lambda kv: -kv[1])[:10]) for q, docs in run.items()}
    trec = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    assert ours["mrr_at_10"] == pytest.approx(100 * np.mean([trec[q]["recip_rank"] for q in qrels]), abs=1e-9)


# --- the task type -----------------------------------------------------------------------------

DOCS = [  # id, text (words from the tiny models' vocabulary)
    ("d1", "a man is playing a guitar"), ("d2", "the cat sits on the mat"), ("d3", "two dogs run across the field"),
    ("d4", "my card payment was declined"), ("d5", "how do i reset my pin"), ("d6", "the stock market fell sharply"),
    ("d7", "children are playing in the park"), ("d8", "a plane is taking off"),
]
QUERIES = [("q1", "a man playing guitar"), ("q2", "my card was declined"), ("q3", "dogs in the park"), ("q4", "the cat")]
QRELS = [("q1", "d1", 1), ("q2", "d4", 2), ("q2", "d5", 1), ("q3", "d3", 1), ("q3", "d7", 1), ("q3", "d2", 0)]  # q4: unjudged


def write_csv(path: Path, header: list[str], rows: list) -> str:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([header, *rows])
    return str(path)


def retrieval_files(folder: Path, queries=QUERIES, docs=DOCS, qrels=QRELS) -> str:
    """A retrieval task with validation = test, plus an STS task, in ``folder``; returns the YAML path."""
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(folder / "queries.csv", ["id", "text"], queries)
    write_csv(folder / "corpus.csv", ["id", "text"], docs)
    write_csv(folder / "qrels.csv", ["query_id", "doc_id", "relevance"], qrels)
    write_csv(folder / "sts.csv", ["a", "b", "score"], [(DOCS[0][1], DOCS[6][1], 3.0), (DOCS[1][1], DOCS[2][1], 1.0),
                                                          (DOCS[3][1], DOCS[4][1], 2.0)])
    parts = "{queries: queries.csv, corpus: corpus.csv, qrels: qrels.csv}"
    path = folder / "tasks.yaml"
    path.write_text(
        f"tasks:\n  - name: my-search\n    type: retrieval\n    files: {{validation: {parts}, test: {parts}}}\n"
        "  - name: my-sts\n    type: sts\n    files: {test: sts.csv}\n    text_columns: [a, b]\n    score_column: score\n",
        encoding="utf-8")
    return str(path)


def test_a_retrieval_split_reads_judged_queries_the_whole_corpus_and_positive_grades(tmp_path):
    task = load_tasks(retrieval_files(tmp_path), ["my-search"])[0]
    data = task.read("test")
    assert data.queries == [q[1] for q in QUERIES[:3]] and data.corpus == [d[1] for d in DOCS]
    assert data.relevance == [{0: 1}, {3: 2, 4: 1}, {2: 1, 6: 1}]  # a 0 judgement is not relevant
    assert data.unjudged_queries == 1
    assert task.metadata()["qrels_columns"] == ("query_id", "doc_id", "relevance")


def test_retrieval_columns_can_be_renamed(tmp_path):
    path = Path(retrieval_files(tmp_path))
    for name in ("queries", "corpus"):
        text = (tmp_path / f"{name}.csv").read_text().replace("id,text", "_id,body", 1)
        (tmp_path / f"{name}.csv").write_text(text)
    (tmp_path / "qrels.csv").write_text((tmp_path / "qrels.csv").read_text().replace("query_id,doc_id,relevance", "q,d,score"))
    path.write_text(path.read_text().replace("type: retrieval\n", "type: retrieval\n    id_column: _id\n    text_column: body\n"
                                             "    qrels_columns: [q, d, score]\n"))
    assert load_tasks(str(path), ["my-search"])[0].read("test").relevance[1] == {3: 2, 4: 1}


@pytest.mark.parametrize("files, extra, message", [
    ("{test: {queries: queries.csv, corpus: corpus.csv}}", "", r"maps queries, corpus, qrels to a file; test has"),
    ("{test: queries.csv}", "", r"maps queries, corpus, qrels"),
    ("{test: {queries: queries.csv, corpus: corpus.csv, qrels: qrels.csv}}", "    text_columns: [text]\n", r"unknown key\(s\) text_columns"),
    ("{test: {queries: queries.csv, corpus: corpus.csv, qrels: qrels.csv}}", "    qrels_columns: [q, d]\n", r"qrels_columns must list 3"),
])
def test_malformed_retrieval_declarations(tmp_path, files, extra, message):
    retrieval_files(tmp_path)
    path = tmp_path / "bad.yaml"
    path.write_text(f"tasks:\n  - name: r\n    type: retrieval\n    files: {files}\n{extra}", encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_tasks(str(path))


@pytest.mark.parametrize("queries, docs, qrels, message", [
    (QUERIES, DOCS, [*QRELS, ("q1", "d99", 1)], r"line 8: document id 'd99' is not in"),
    (QUERIES, DOCS, [*QRELS, ("q9", "d1", 1)], r"line 8: query id 'q9' is not in"),
    (QUERIES, DOCS, [*QRELS, ("q1", "d2", "high")], r"line 8: relevance 'high' in column 'relevance' is not a whole number"),
    (QUERIES, DOCS, [*QRELS, ("q1", "d1", 1)], r"line 8: query 'q1' and document 'd1' are judged twice"),
    ([*QUERIES, ("q1", "again")], DOCS, QRELS, r"line 6: query id 'q1' appears twice"),
    (QUERIES, [*DOCS, ("d9", " ")], QRELS, r"line 10: document 'd9' has an empty 'text'"),
    (QUERIES, DOCS, [("q1", "d1", 0)], r"no query has a relevant document"),
])
def test_bad_retrieval_files_name_the_line(tmp_path, queries, docs, qrels, message):
    task = load_tasks(retrieval_files(tmp_path, queries, docs, qrels), ["my-search"])[0]
    with pytest.raises(DataError, match=message):
        task.read("test")


# --- evaluate(): two encoders ------------------------------------------------------------------


def angle_vectors(angles: dict[str, float]):
    """An encoder of unit vectors at given angles (degrees), recording what it saw."""
    seen: list[str] = []

    def encode(texts: list[str]) -> np.ndarray:
        seen.extend(texts)
        return np.array([[math.cos(math.radians(angles[t])), math.sin(math.radians(angles[t]))] for t in texts])

    return encode, seen


def test_evaluate_encodes_queries_and_documents_with_their_own_encoders(tmp_path):
    tasks = load_tasks(retrieval_files(tmp_path))
    # Documents spread over 0..70 degrees; each query sits nearest the documents listed in its comment.
    docs = {text: 10.0 * i for i, (_, text) in enumerate(DOCS)}
    queries = {QUERIES[0][1]: 1.0,    # d1 (0), d2, d3, ...: relevant d1 at rank 1
               QUERIES[1][1]: 36.0,   # d5 (40), d4 (30), d6 (50): grade 1 at rank 1, grade 2 at rank 2
               QUERIES[2][1]: 64.0}   # d7 (60), d8 (70), d6 (50), d5, d4, d3 (20): relevant at ranks 1 and 6
    encode_query, seen_queries = angle_vectors(queries)
    encode_document, seen_docs = angle_vectors(docs)
    result = evaluate(None, tasks, "test", encode_query=encode_query, encode_document=encode_document, progress=False)
    assert sorted(seen_queries) == sorted(queries) and sorted(seen_docs) == sorted(docs)
    assert result["skipped"] == {"my-sts": "a query/corpus model pairing scores retrieval tasks only"}
    scores = result["tasks"]["my-search"]
    ndcg_q2 = (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))
    ndcg_q3 = (1 + 1 / math.log2(7)) / (1 + 1 / math.log2(3))
    assert scores["ndcg_at_10"] == pytest.approx(100 * (1 + ndcg_q2 + ndcg_q3) / 3)
    assert scores["mrr_at_10"] == pytest.approx(100.0)
    assert (scores["rows"], scores["corpus_size"], scores["unjudged_queries"]) == (3, 8, 1)
    assert result["texts_by_role"] == {"query": 3, "document": 8}
    assert result["averages"] == {"retrieval": scores["ndcg_at_10"], "overall": scores["ndcg_at_10"]}


def test_evaluate_refuses_query_and_document_vectors_of_different_widths(tmp_path):
    tasks = load_tasks(retrieval_files(tmp_path), ["my-search"])
    with pytest.raises(ModelError, match="Query vectors are 3-d and document vectors 2-d"):
        evaluate(None, tasks, encode_query=lambda t: np.ones((len(t), 3)), encode_document=lambda t: np.ones((len(t), 2)),
                 progress=False)


# --- the bundled QNLI retrieval task -----------------------------------------------------------


def qnli_pairs(split: str) -> list[dict[str, str]]:
    with open(ROOT / "data" / "eval" / f"qnli_{split}.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("split, queries, corpus", [("validation", 515, 992), ("test", 2702, 3911)])
def test_bundled_qnli_retrieval_is_built_from_the_qnli_pairs(split, queries, corpus):
    data = load_tasks(None, ["QNLI-retrieval"])[0].read(split)
    pairs = qnli_pairs(split)
    entailed = {(p["sentence1"], p["sentence2"]) for p in pairs if p["label"] == "0"}  # label 0 = entailment
    assert (len(data.queries), len(data.corpus), data.unjudged_queries) == (queries, corpus, 0)
    assert set(data.corpus) == {p["sentence2"] for p in pairs}  # every sentence, distractors included
    assert set(data.queries) == {q for q, _ in entailed}
    assert {(q, data.corpus[d]) for q, grades in zip(data.queries, data.relevance, strict=True) for d in grades} == entailed


def test_the_build_script_reproduces_the_bundled_files(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("build_qnli_retrieval", ROOT / "scripts" / "build_qnli_retrieval.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setattr(script, "OUT", str(tmp_path))
    script.main()
    bundled = ROOT / "data" / "eval" / "qnli_retrieval"
    assert sorted(os.listdir(tmp_path)) == sorted(os.listdir(bundled))
    for name in os.listdir(bundled):
        assert (tmp_path / name).read_bytes() == (bundled / name).read_bytes(), name


# --- talas eval --query_model / --corpus_model, end to end on tiny models -----------------------


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_bert):
    """Two 32-d tiny BERTs (a sentence-transformers 'student' folder and a plain 'teacher') and a 48-d one."""
    from sentence_transformers import SentenceTransformer
    from tiny_models import build_bert

    folder = tmp_path_factory.mktemp("retrieval_models")
    student = folder / "student"
    SentenceTransformer(str(tiny_bert), device="cpu").save(str(student))  # Transformer + mean Pooling
    teacher = build_bert(folder / "teacher", seed=1)
    wide = build_bert(folder / "wide", hidden=48, seed=2)
    return {"student": str(student), "teacher": str(teacher), "wide": str(wide)}


def our_ndcg(query_vectors: np.ndarray, doc_vectors: np.ndarray, relevance: list[dict[int, int]]) -> float:
    """nDCG@10 recomputed with a full argsort and the textbook formula (independent of metrics.py)."""
    q = query_vectors / np.linalg.norm(query_vectors, axis=1, keepdims=True)
    d = doc_vectors / np.linalg.norm(doc_vectors, axis=1, keepdims=True)
    values = []
    for row, grades in zip(np.argsort(-(q @ d.T), axis=1, kind="stable"), relevance, strict=True):
        dcg = sum(grades.get(int(doc), 0) / math.log2(rank + 2) for rank, doc in enumerate(row[:10]))
        ideal = sum(g / math.log2(rank + 2) for rank, g in enumerate(sorted(grades.values(), reverse=True)[:10]))
        values.append(dcg / ideal)
    return 100 * float(np.mean(values))


def run_eval(tmp_path, *args) -> tuple[int, dict]:
    out = tmp_path / "out"
    rc = eval_main([*args, "--output_dir", str(out), "--no_progress", "--device", "cpu"])
    return rc, json.loads((out / "eval_results.json").read_text()) if rc == 0 else {}


def test_student_queries_against_a_teacher_corpus(tmp_path, models, capsys):
    from sentence_transformers import SentenceTransformer

    from talas.models.encoder import Encoder

    tasks = retrieval_files(tmp_path / "data")
    rc, report = run_eval(tmp_path, "--tasks", tasks, "--model", models["student"], "--query_model", models["student"],
                          "--corpus_model", models["teacher"], "--corpus_pooling", "mean", "--name", "student", "--name", "pair")
    assert rc == 0, capsys.readouterr().err
    symmetric, pair = report["models"]
    assert set(symmetric["results"]["tasks"]) == {"my-search", "my-sts"} and set(pair["results"]["tasks"]) == {"my-search"}
    assert (pair["query"]["model"], pair["corpus"]["model"], pair["corpus"]["pooling"]) == (models["student"], models["teacher"], "mean")
    assert pair["query_texts_per_s"] > 0 and pair["results"]["texts_by_role"] == {"query": 3, "document": 8}
    data = load_tasks(tasks, ["my-search"])[0].read("test")
    student = SentenceTransformer(models["student"], device="cpu")
    teacher = Encoder.load(models["teacher"], "mean", 128)
    expected = our_ndcg(student.encode(data.queries), teacher.encode(data.corpus).numpy(), data.relevance)
    assert pair["results"]["tasks"]["my-search"]["ndcg_at_10"] == pytest.approx(expected, abs=1e-4)
    markdown = (tmp_path / "out" / "eval_results.md").read_text()
    assert "| my-sts | sts | spearman |" in markdown and "queries: `" in markdown


def test_a_width_mismatch_is_refused_before_encoding(tmp_path, models, capsys):
    rc, _ = run_eval(tmp_path, "--tasks", retrieval_files(tmp_path / "data"), "--query_model", models["student"],
                     "--corpus_model", models["wide"], "--corpus_pooling", "mean")
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert "embeds into 32 dimensions" in err and "into 48" in err and "--export_projection" in err


@pytest.mark.parametrize("args, message", [
    (["--query_model", "S"], "the same number of times (1 and 0)"),
    (["--model", "M", "--corpus_cache", "c.safetensors"], "--corpus_cache needs --query_model"),
])
def test_pairing_options_are_checked(tmp_path, args, message, capsys):
    assert eval_main(["--tasks", retrieval_files(tmp_path / "data"), *args]) == 2
    assert message in capsys.readouterr().err


def test_a_pairing_without_a_retrieval_task_is_refused(tmp_path, models, capsys):
    rc, _ = run_eval(tmp_path, "--tasks", retrieval_files(tmp_path / "data"), "--task", "my-sts",
                     "--query_model", models["student"], "--corpus_model", models["teacher"], "--corpus_pooling", "mean")
    assert rc == 2 and "scores retrieval tasks only" in capsys.readouterr().err


def build_corpus_cache(tmp_path, teacher: str, texts: list[str], pooling: str = "mean") -> str:
    data = write_csv(tmp_path / f"corpus_{pooling}_{len(texts)}.csv", ["text"], [[t] for t in texts])
    path = tmp_path / "cache" / f"corpus_{pooling}_{len(texts)}.safetensors"
    assert cli_main(["cache", "--teacher_model_name", teacher, "--pooling_method", pooling, "--max_length", "128",
                     "--device", "cpu", "--train_data_path", data, "--cache_path", str(path)]) == 0
    return str(path)


def test_the_corpus_is_read_from_a_teacher_cache(tmp_path, models, capsys):
    tasks = retrieval_files(tmp_path / "data")
    docs = [d[1] for d in DOCS]
    pair = ["--tasks", tasks, "--query_model", models["student"], "--corpus_model", models["teacher"]]
    rc, plain = run_eval(tmp_path, *pair, "--corpus_pooling", "mean")
    assert rc == 0
    expected = plain["models"][0]["results"]["tasks"]["my-search"]
    for texts, from_cache in ((docs, 8), (docs[:5], 5)):  # the whole corpus, then a cache that covers part of it
        cache = build_corpus_cache(tmp_path, models["teacher"], texts)
        rc, report = run_eval(tmp_path, *pair, "--corpus_cache", cache)  # the pooling comes from the cache
        assert rc == 0, capsys.readouterr().err
        run = report["models"][0]
        assert (run["corpus_cache"]["from_cache"], run["corpus_cache"]["encoded"]) == (from_cache, 8 - from_cache)
        assert run["corpus_cache"]["pooling"] == "mean" and run["corpus"]["pooling"] == "mean"
        for name in ("ndcg_at_10", "mrr_at_10", "recall_at_10"):
            assert run["results"]["tasks"]["my-search"][name] == pytest.approx(expected[name], abs=1e-4)


def test_a_cache_of_other_vectors_is_refused(tmp_path, models, capsys):
    tasks = retrieval_files(tmp_path / "data")
    docs = [d[1] for d in DOCS]
    cls_cache = build_corpus_cache(tmp_path, models["teacher"], docs, pooling="cls")
    rc, _ = run_eval(tmp_path, "--tasks", tasks, "--query_model", models["student"], "--corpus_model", models["teacher"],
                     "--corpus_pooling", "mean", "--corpus_cache", cls_cache)
    err = capsys.readouterr().err
    assert rc == 2 and "does not hold the vectors of --corpus_model" in err and "pooling cls" in err
    other = build_corpus_cache(tmp_path, models["teacher"], ["an unrelated text", "another one"])
    rc, _ = run_eval(tmp_path, "--tasks", tasks, "--query_model", models["student"], "--corpus_model", models["teacher"],
                     "--corpus_cache", other)
    assert rc == 2 and "holds none of the 8 corpus texts" in capsys.readouterr().err


# --- talas router: one model, two routes --------------------------------------------------------


def test_router_export_round_trip(tmp_path, models, capsys):
    from sentence_transformers import SentenceTransformer

    from talas.models.encoder import Encoder

    out = tmp_path / "router"
    assert cli_main(["router", "--query_model", models["student"], "--document_model", models["teacher"],
                     "--document_pooling", "mean", "--output_dir", str(out)]) == 0, capsys.readouterr().err
    loaded = SentenceTransformer(str(out), device="cpu")
    texts = [d[1] for d in DOCS]

    def unit(x):
        x = np.asarray(x, dtype=np.float64)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    student = SentenceTransformer(models["student"], device="cpu").encode(texts)
    teacher = Encoder.load(models["teacher"], "mean", 128).encode(texts).numpy()
    np.testing.assert_allclose(loaded.encode_query(texts), unit(student), atol=1e-5)
    np.testing.assert_allclose(loaded.encode_document(texts), unit(teacher), atol=1e-5)
    np.testing.assert_allclose(loaded.encode(texts), unit(teacher), atol=1e-5)  # no task: the document route
    assert not np.allclose(unit(student), unit(teacher))  # the two routes really differ
    # talas eval on the router folder scores what the explicit pairing scores.
    tasks = retrieval_files(tmp_path / "data")
    rc, routed = run_eval(tmp_path, "--tasks", tasks, "--task", "my-search", "--model", str(out))
    assert rc == 0
    rc, paired = run_eval(tmp_path, "--tasks", tasks, "--query_model", models["student"], "--corpus_model", models["teacher"],
                          "--corpus_pooling", "mean")
    assert rc == 0
    assert routed["models"][0]["results"]["tasks"]["my-search"]["ndcg_at_10"] == pytest.approx(
        paired["models"][0]["results"]["tasks"]["my-search"]["ndcg_at_10"], abs=1e-4)


def test_router_refuses_a_width_mismatch(tmp_path, models, capsys):
    assert cli_main(["router", "--query_model", models["student"], "--document_model", models["wide"],
                     "--document_pooling", "mean", "--output_dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "embeds into 32 dimensions" in err and "into 48" in err and not (tmp_path / "r").exists()
    assert cli_main(["router", "--query_model", models["student"], "--document_model", models["teacher"],
                     "--output_dir", str(tmp_path / "r")]) == 2
    assert "pass its pooling" in capsys.readouterr().err
