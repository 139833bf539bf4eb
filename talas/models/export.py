"""Save a trained student as a sentence-transformers model folder (plus a model card).

    from sentence_transformers import SentenceTransformer
    SentenceTransformer("checkpoints/talas/model").encode(["a sentence"])

The folder holds modules.json, the transformer (safetensors weights, config, tokenizer), the pooling
config matching the training pooling, and optional extra modules after pooling (Stella's head, the
TALAS projection into the teacher's space) as Dense modules.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from datetime import datetime, timezone

from torch import nn

from talas.config import config_dict
from talas.errors import ModelError
from talas.models.teacher import teacher_setup

ST_POOLING = {"cls": "cls", "mean": "mean", "last_token": "lasttoken"}


def st_modules():
    try:  # sentence-transformers >= 6
        from sentence_transformers.sentence_transformer import modules
    except ImportError:  # pragma: no cover - v5 layout
        from sentence_transformers import models as modules
    return modules


def dense_module(linear: nn.Linear, width: int | None = None) -> nn.Module:
    """sentence-transformers Dense (no activation) with ``linear``'s weights, its first ``width`` outputs only."""
    width = width or linear.out_features
    return st_modules().Dense(
        linear.in_features, width, bias=linear.bias is not None, activation_function=nn.Identity(),
        init_weight=linear.weight[:width].detach().float().cpu().clone(),
        init_bias=None if linear.bias is None else linear.bias[:width].detach().float().cpu().clone(),
    )


def export_student(method: nn.Module, out_dir: str, cfg, extra_modules: Sequence[nn.Module] = ()) -> str:
    """Write ``method.student`` (an Encoder) and ``extra_modules`` (after pooling) to ``out_dir``."""
    from sentence_transformers import SentenceTransformer

    student = method.student
    modules = st_modules()
    tmp = out_dir.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    weights = os.path.join(tmp, "hf")
    student.model.save_pretrained(weights)
    student.tokenizer.save_pretrained(weights)
    transformer = modules.Transformer(weights, max_seq_length=student.max_length)
    pooling = modules.Pooling(student.dim, pooling_mode=ST_POOLING[student.pooling])
    model = SentenceTransformer(modules=[transformer, pooling, *extra_modules], device="cpu")
    model.save(tmp)
    shutil.rmtree(weights)
    write_model_card(tmp, cfg, student)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    return out_dir


def write_model_card(folder: str, cfg, student) -> None:
    settings = config_dict(cfg)
    card = f"""---
library_name: sentence-transformers
tags: [sentence-transformers, sentence-similarity, feature-extraction, distillation, talas]
---
# Student distilled with TALAS ({cfg.method})

- **Student init:** `{cfg.student_model_name}`{describe_layers(cfg)}, {student.dim}-d, {student.pooling} pooling
- **Teacher:** `{cfg.teacher_model_name}` ({describe_teacher(cfg)})
- **Method:** `{cfg.method}`
- **Training data:** `{cfg.train_data_path}`
- **Exported:** {datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}

```python
from sentence_transformers import SentenceTransformer
model = SentenceTransformer("{os.path.basename(folder.rstrip('/').removesuffix('.tmp'))}")
embeddings = model.encode(["An example sentence"])
```

## Training configuration
```json
{json.dumps(settings, indent=2)}
```
"""
    with open(os.path.join(folder, "README.md"), "w", encoding="utf-8") as handle:
        handle.write(card)


def describe_teacher(cfg) -> str:
    """How the teacher embedded the targets, as resolved (e.g. "mean pooling, normalized, prompt 'query: '")."""
    try:
        setup = teacher_setup(cfg)
    except ModelError:  # a student-only run never needed a loadable teacher
        return f"{cfg.pooling_method} pooling, not used"
    return ", ".join([f"{setup.pooling} pooling", *(["normalized"] if setup.normalize else []),
                      *([f"prompt {setup.prompt!r}"] if setup.prompt else [])])


def describe_layers(cfg) -> str:
    """" (layers 0, 3)", " (first 2 layers)" or "" (all), for model cards and reports."""
    if getattr(cfg, "student_layers", None):
        return f" (layers {', '.join(map(str, cfg.student_layers))})"
    return f" (first {cfg.student_num_layers} layers)" if cfg.student_num_layers else ""
