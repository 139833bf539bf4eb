"""Build the bundled QNLI retrieval task from the QNLI pair files in data/eval (run from anywhere).

    python scripts/build_qnli_retrieval.py          # writes data/eval/qnli_retrieval/{validation,test}_*.csv

Per split, separately: the queries are the questions that have at least one entailed sentence
(label 0); the corpus is every distinct sentence of the split, so the sentences a question is
paired with but not answered by stay in as hard distractors (they come from the same Wikipedia
paragraph); a query's relevant documents are its entailed sentences (relevance 1). Ids keep the
GLUE ``idx`` of the row where the text first appears: ``q<idx>`` for a question, ``d<idx>`` for a
sentence. Rebuilding gives byte-identical files.
"""

from __future__ import annotations

import csv
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from talas.data.tables import read_table  # noqa: E402

SOURCE = os.path.join(ROOT, "data", "eval", "qnli_{split}.csv")
OUT = os.path.join(ROOT, "data", "eval", "qnli_retrieval")
ENTAILED = "0"  # QNLI's label 0: the sentence answers the question


def build(split: str) -> dict[str, list[list[str]]]:
    """The rows of the queries, corpus and qrels files of one split (header first)."""
    table = read_table(SOURCE.format(split=split))
    table.require("sentence1", "sentence2", "label", "idx")
    query_id: dict[str, str] = {}
    doc_id: dict[str, str] = {}
    relevant: dict[str, list[str]] = {}
    for row in table.rows:
        question, sentence = row["sentence1"], row["sentence2"]
        query_id.setdefault(question, f"q{row['idx']}")
        doc_id.setdefault(sentence, f"d{row['idx']}")
        if row["label"] == ENTAILED:
            relevant.setdefault(question, []).append(doc_id[sentence])
    judged = [q for q in query_id if q in relevant]
    return {
        "queries": [["id", "text"], *([query_id[q], q] for q in judged)],
        "corpus": [["id", "text"], *([i, s] for s, i in doc_id.items())],
        "qrels": [["query_id", "doc_id", "relevance"], *([query_id[q], d, "1"] for q in judged for d in relevant[q])],
    }


def main() -> int:
    os.makedirs(OUT, exist_ok=True)
    for split in ("validation", "test"):
        files = build(split)
        for part, rows in files.items():
            path = os.path.join(OUT, f"{split}_{part}.csv")
            with open(path, "w", newline="", encoding="utf-8") as handle:
                csv.writer(handle, lineterminator="\n").writerows(rows)
        print(f"{split}: {len(files['queries']) - 1} queries, {len(files['corpus']) - 1} documents, "
              f"{len(files['qrels']) - 1} relevant pairs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
