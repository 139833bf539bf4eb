"""Token logits of an encoder: a distribution over its vocabulary at every token, for methods that
weigh tokens by the model's own uncertainty (CDM's entropy weights). Sentence embedders rarely ship
an LM head, so without one the last hidden states are scored against the input embeddings."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from talas.models.encoder import Encoder, LayerChoice, keep_layers, resolve_model_path

#: Features (input_ids, attention_mask [N, L]) → float32 logits [N, L, V].
Logits = Callable[[dict[str, torch.Tensor]], torch.Tensor]


def pseudo_logits(model: nn.Module) -> Logits:
    """Token logits of a model without an LM head: last hidden states times its input embeddings."""
    table = model.get_input_embeddings().weight

    def logits(features: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = model(input_ids=features["input_ids"], attention_mask=features["attention_mask"]).last_hidden_state
        return hidden.float() @ table.float().T

    return logits


def vocab_size(model: nn.Module) -> int:
    return int(model.get_input_embeddings().weight.shape[0])


def student_logits(student: Encoder, path: str, layers: LayerChoice | None, device: torch.device) -> tuple[Logits, int]:
    """The untrained student's token logits and their width: its MLM head when the checkpoint at ``path``
    has one (loaded, cut to the same ``layers``), else pseudo-logits of an eval-mode copy of the loaded
    ``student`` (a copy: the student itself keeps its device and training mode)."""
    architectures = student.model.config.architectures or []
    if any(name.endswith("ForMaskedLM") for name in architectures):
        from transformers import AutoModelForMaskedLM

        mlm = AutoModelForMaskedLM.from_pretrained(resolve_model_path(path))
        if layers:
            keep_layers(mlm.base_model, layers)
        mlm.to(device).eval()
        return (lambda f: mlm(input_ids=f["input_ids"], attention_mask=f["attention_mask"]).logits.float()), vocab_size(mlm)
    model = copy.deepcopy(student.model).to(device).eval()
    return pseudo_logits(model), vocab_size(model)
