"""One training batch as the collator builds it and the teacher supply completes it.

A typed record rather than a dict, so a method reads what it declared (``batch.teacher_hidden``)
and a missing part is None, not a missing key. It sits below the methods, the teacher supply and
the collator, which all use it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass, replace

import torch

#: Tokenizer output: input_ids, attention_mask (and whatever else the tokenizer returns), [N, L] each.
Features = dict[str, torch.Tensor]


@dataclass
class Alignment:
    """One alignment of a batch's N texts, packed on padded positions (talas.train.batching.pack_alignment).

    ``student_groups`` [N, G, Ls] / ``teacher_groups`` [N, G, Lt]: 0/1 (float) membership of each padded
    token position in each of the text's groups; ``group_mask`` [N, G] (bool): which groups exist (G is the
    most groups of any text in the batch).
    """

    student_groups: torch.Tensor
    teacher_groups: torch.Tensor
    group_mask: torch.Tensor


@dataclass
class Batch:
    """N texts laid out [anchors (size); positives (size); hard negatives] (anchors only when
    ``single_view``), what the student reads and what the teacher supplied for the same rows.

    - ``features``: the student's token ids of the N texts;
    - ``text_ids`` [N]: each text's index into the training data's unique texts (duplicate masking);
    - ``teacher_vectors`` [N, D_T] and ``teacher_mask`` [N] (bool: which rows have a vector), from the
      cache or the online teacher;
    - ``teacher_features``: the online teacher's token ids of the same texts (its prompt, EOS, padding side);
    - ``teacher_hidden`` / ``teacher_attentions``: the online teacher's token states [N, Lt, D_T] /
      attention maps [N, H, Lt, Lt], one per declared layer, in the declared order;
    - ``alignments``: an ``Alignment`` per declared alignment name.
    """

    texts: list[str]
    features: Features | None = None
    size: int = 0
    text_ids: torch.Tensor | None = None
    single_view: bool = False
    teacher_vectors: torch.Tensor | None = None
    teacher_mask: torch.Tensor | None = None
    teacher_features: Features | None = None
    teacher_hidden: tuple[torch.Tensor, ...] | None = None
    teacher_attentions: tuple[torch.Tensor, ...] | None = None
    alignments: dict[str, Alignment] | None = None


def to_device(value, device: torch.device):
    """``value`` (a tensor, a Batch or Alignment, or a dict or tuple of them) with every tensor on ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if is_dataclass(value) and not isinstance(value, type):
        return replace(value, **{f.name: to_device(getattr(value, f.name), device) for f in fields(value)})
    if isinstance(value, dict):
        return {key: to_device(item, device) for key, item in value.items()}
    if isinstance(value, tuple):
        return tuple(to_device(item, device) for item in value)
    return value
