"""Pure metric functions behind `talas eval`: arrays in, scores (×100) out.

    from talas.eval.metrics import sts_scores, pair_classification_scores, classification_scores
    sts_scores(cosine_rows(a, b), gold)                          # {"spearman": .., "pearson": ..}

Each task type of talas.eval.evaluate is one function here, so every number in a report can be
checked by hand on a few rows (tests/integration/test_evaluate.py does).
"""

from __future__ import annotations

import warnings

import numpy as np


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of row i of ``a`` with row i of ``b``: [N, D] x [N, D] -> [N]."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    # A zero vector (possible for a random or broken model) has cosine 0 with everything, not NaN.
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.einsum("nd,nd->n", a, b) / np.where(norms > 0, norms, 1.0)


def sts_scores(similarities: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """Spearman and Pearson correlation (×100) of predicted similarities with gold scores."""
    from scipy.stats import pearsonr, spearmanr

    similarities = np.asarray(similarities, dtype=np.float64)
    gold = np.asarray(gold, dtype=np.float64)
    # A constant prediction has no defined correlation; report 0 (no signal) instead of NaN.
    if np.ptp(similarities) == 0:
        return {"spearman": 0.0, "pearson": 0.0}
    return {
        "spearman": 100.0 * float(spearmanr(similarities, gold).statistic),
        "pearson": 100.0 * float(pearsonr(similarities, gold).statistic),
    }


def best_threshold(similarities: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """The threshold t maximising accuracy of "positive iff similarity >= t", and that accuracy (×100).

    Candidates are the midpoints between consecutive distinct similarities, plus one below the
    lowest (all positive) and one above the highest (all negative). Ties go to the lowest threshold.
    """
    sims = np.asarray(similarities, dtype=np.float64)
    pos = np.asarray(positive, dtype=bool)
    order = np.argsort(sims, kind="stable")
    sims, pos = sims[order], pos[order]
    # Cutting after the first k sorted rows predicts those k negative and the rest positive.
    negatives_below = np.concatenate([[0], np.cumsum(~pos)])
    positives_above = pos.sum() - np.concatenate([[0], np.cumsum(pos)])
    correct = negatives_below + positives_above
    # A cut between two equal similarities cannot be realised by any threshold.
    valid = np.ones(len(sims) + 1, dtype=bool)
    valid[1:-1] = sims[1:] > sims[:-1]
    k = int(np.argmax(np.where(valid, correct, -1)))
    if k == 0:
        threshold = sims[0] - 1.0
    elif k == len(sims):
        threshold = sims[-1] + 1.0
    else:
        threshold = (sims[k - 1] + sims[k]) / 2.0
    return float(threshold), 100.0 * float(correct[k]) / len(sims)


def binary_f1(predicted: np.ndarray, positive: np.ndarray) -> float:
    """F1 (×100) of the positive class; 0 when there are no true positives."""
    predicted = np.asarray(predicted, dtype=bool)
    positive = np.asarray(positive, dtype=bool)
    true_pos = float(np.sum(predicted & positive))
    if true_pos == 0:
        return 0.0
    precision = true_pos / np.sum(predicted)
    recall = true_pos / np.sum(positive)
    return 100.0 * 2 * precision * recall / (precision + recall)


def average_precision(similarities: np.ndarray, positive: np.ndarray) -> float:
    """Average precision (×100) of ranking by similarity: threshold-free, so nothing is tuned."""
    from sklearn.metrics import average_precision_score

    return 100.0 * float(average_precision_score(np.asarray(positive, dtype=bool), similarities))


def pair_classification_scores(
    tune_similarities: np.ndarray,
    tune_positive: np.ndarray,
    report_similarities: np.ndarray,
    report_positive: np.ndarray,
) -> dict[str, float]:
    """Pick the accuracy-maximising threshold on the tuning split, apply it to the reported split.

    Returns accuracy, F1 of the positive class and average precision on the reported split (×100),
    the threshold and the accuracy it reached on the tuning split.
    """
    threshold, tune_accuracy = best_threshold(tune_similarities, tune_positive)
    report_positive = np.asarray(report_positive, dtype=bool)
    predicted = np.asarray(report_similarities) >= threshold
    return {
        "accuracy": 100.0 * float(np.mean(predicted == report_positive)),
        "f1": binary_f1(predicted, report_positive),
        "ap": average_precision(report_similarities, report_positive),
        "threshold": threshold,
        "threshold_accuracy": tune_accuracy,
    }


def macro_f1(predicted: np.ndarray, gold: np.ndarray) -> float:
    """Unweighted mean of each class's F1 (×100), over the classes in gold or predicted (as scikit-learn)."""
    predicted = np.asarray(predicted)
    gold = np.asarray(gold)
    scores = [binary_f1(predicted == label, gold == label) for label in np.unique(np.concatenate([gold, predicted]))]
    return float(np.mean(scores))


def classification_scores(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    solver: str = "lbfgs",
    C: float = 1.0,
    max_iter: int = 1000,
    seed: int = 0,
) -> dict[str, float | int | bool]:
    """Logistic regression on standardised frozen embeddings: fit on train, accuracy and macro-F1 on test.

    Standardising (scaler fit on train only) keeps lbfgs well conditioned, so it converges in a
    few hundred iterations whatever the embedding scale; ``converged`` says whether it did.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_x)
    model = LogisticRegression(solver=solver, C=C, max_iter=max_iter, random_state=seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(scaler.transform(train_x), train_y)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    predicted = model.predict(scaler.transform(test_x))
    test_y = np.asarray(test_y)
    return {
        "accuracy": 100.0 * float(np.mean(predicted == test_y)),
        "macro_f1": macro_f1(predicted, test_y),
        "iterations": int(np.max(model.n_iter_)),
        "converged": converged,
    }


# --- retrieval ------------------------------------------------------------------------------------

# Scores per block of the exact search: a block's float32 scores, their negation and argpartition's
# int64 indices take 16 bytes per score, about 256 MiB in all.
SEARCH_BLOCK_SCORES = 1 << 24


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32); a zero row stays zero (cosine 0 with everything)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def exact_search(queries: np.ndarray, corpus: np.ndarray, k: int) -> np.ndarray:
    """Row indices of the ``k`` corpus rows most cosine-similar to each query: [Q, D] x [N, D] -> [Q, min(k, N)].

    Exact: every query is scored against every document with a matrix product, a block of queries
    at a time. Equal scores rank the lower corpus row first, so the ranking is reproducible.
    """
    q, c = unit_rows(queries), unit_rows(corpus)
    k = min(k, len(c))
    block = max(1, SEARCH_BLOCK_SCORES // max(1, len(c)))
    out = np.empty((len(q), k), dtype=np.int64)
    for start in range(0, len(q), block):
        scores = q[start : start + block] @ c.T
        out[start : start + block] = top_k_rows(scores, k)
    return out


def top_k_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """Per row, the columns of the k largest scores, best first, ties to the lower column."""
    if k == scores.shape[1]:
        candidates = np.broadcast_to(np.arange(k), scores.shape)
    else:
        candidates = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    kth = np.take_along_axis(scores, candidates, axis=1).min(axis=1)
    out = np.empty((len(scores), k), dtype=np.int64)
    for row in range(len(scores)):
        # argpartition picks arbitrarily among scores equal to the k-th: take every column that reaches it.
        tied = np.flatnonzero(scores[row] >= kth[row]) if k < scores.shape[1] else candidates[row]
        order = np.lexsort((tied, -scores[row, tied]))  # score descending, then column ascending
        out[row] = tied[order[:k]]
    return out


def retrieval_scores(ranked: np.ndarray, relevance: list[dict[int, int]]) -> dict[str, float]:
    """nDCG@10, MRR@10, Recall@10 and Recall@100 (×100, mean over queries) of ranked corpus rows.

    ``ranked[i]`` lists query i's retrieved corpus rows best first (at least 100 when the corpus
    has them); ``relevance[i]`` maps corpus row -> grade (a positive integer; unlisted rows are 0).
    As trec_eval: the gain of a document is its grade, discounted by log2(rank + 1); the ideal DCG
    ranks the query's grades highest first; a document counts as relevant when its grade is >= 1.
    """
    ndcg, mrr, recall10, recall100 = [], [], [], []
    discounts = 1.0 / np.log2(np.arange(2, 12))  # ranks 1..10
    for rows, grades in zip(ranked, relevance, strict=True):
        gains = np.array([grades.get(int(r), 0) for r in rows[:100]], dtype=np.float64)
        top = gains[:10]
        ideal = np.sort(np.fromiter(grades.values(), dtype=np.float64))[::-1][:10]
        ndcg.append(float(top @ discounts[: len(top)]) / float(ideal @ discounts[: len(ideal)]))
        hits = np.flatnonzero(top > 0)
        mrr.append(1.0 / (hits[0] + 1) if len(hits) else 0.0)
        relevant = sum(1 for g in grades.values() if g > 0)
        recall10.append(np.count_nonzero(top > 0) / relevant)
        recall100.append(np.count_nonzero(gains > 0) / relevant)
    return {name: 100.0 * float(np.mean(values)) for name, values in
            (("ndcg_at_10", ndcg), ("mrr_at_10", mrr), ("recall_at_10", recall10), ("recall_at_100", recall100))}
