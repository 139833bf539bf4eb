"""The options of `talas eval` (one schema, as for training): which models, which tasks, how the
classifiers are fitted, where results go.

Options given once apply to every model; the per-model ones (``model``, ``pooling``, ``prompt``, ...)
are lists that pair up in order with the models (see talas/cli/eval.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from talas.config.options import check_ranges, option
from talas.eval.evaluate import DEFAULT_MAX_TRAIN_SAMPLES
from talas.eval.models import DTYPES
from talas.models.encoder import POOLING_METHODS as POOLINGS

SOLVERS = ("lbfgs", "newton-cg", "newton-cholesky", "sag", "saga")


@dataclass
class EvalConfig:
    """What `talas eval` scores and how."""

    model: list[str] = option([], "Model folder or hub id; repeat to compare models.", group="models")
    query_model: list[str] = option([], "Encode retrieval queries with this model and the corpus with --corpus_model "
                                        "(repeat both to compare pairings).", group="models")
    corpus_model: list[str] = option([], "Encode the retrieval corpus with this model (see --query_model).", group="models")
    corpus_cache: list[str] = option([], "Teacher cache file of the --corpus_model holding corpus texts: those vectors "
                                         "are read, not encoded.", group="models")
    query_pooling: list[str] = option([], "Pooling of a plain transformers --query_model.", POOLINGS, group="models")
    corpus_pooling: list[str] = option([], "Pooling of a plain transformers --corpus_model (default with --corpus_cache: "
                                           "the cache's).", POOLINGS, group="models")
    query_prompt: list[str] = option([], "Text prepended to every query of a --query_model.", group="models")
    corpus_prompt: list[str] = option([], "Text prepended to every document of a --corpus_model.", group="models")
    name: list[str] = option([], "Label for each --model, then each query/corpus pairing, in tables (default: folder names).",
                             group="models")
    pooling: list[str] = option([], "Pooling of a plain transformers model.", POOLINGS, group="models")
    prompt: list[str] = option([], "Text prepended to every input (e.g. an instruction).", group="models")
    max_length: int | None = option(None, "Max tokens per text (default: the ST folder's own, else 256).",
                                    group="models")
    tasks: str | None = option(None, "YAML file of task declarations (default: the bundled suite).", group="data")
    task: list[str] = option([], "Evaluate only this task.", group="data")
    data_dir: str | None = option(None, "Folder that relative data paths of the task file resolve against.", group="data")
    split: str = option("test", "The split scores are reported on.", ("test", "validation"), group="data")
    max_train_samples: int = option(DEFAULT_MAX_TRAIN_SAMPLES, "Cap on classifier training rows per task (seeded random subset; 0 = all).",
                                    at_least=0, group="evaluation")
    seed: int = option(0, "Seed of the training subset and the classifier.", group="evaluation")
    logreg_solver: str = option("lbfgs", "scikit-learn LogisticRegression solver (multinomial ones).", SOLVERS, group="evaluation")
    logreg_C: float = option(1.0, "Inverse L2 strength of the classifier.", above=0, group="evaluation")
    logreg_max_iter: int = option(1000, "Classifier iterations (lbfgs).", at_least=1, group="evaluation")
    output_dir: str = option("eval_results", "Where eval_results.json/.md (and comparison.png) go.", group="logging")
    no_progress: bool = option(False, "No progress bar.", group="logging")
    batch_size: int = option(64, "Texts per forward pass.", at_least=1, group="device")
    device: str | None = option(None, "cuda / cpu / mps (default: cuda when available).", group="device")
    dtype: str = option("float32", "Model weights dtype (bfloat16 for big teachers on GPU).", DTYPES, group="device")

    def check(self) -> None:
        check_ranges(self)
