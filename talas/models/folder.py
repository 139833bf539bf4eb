"""What a model folder says about how it embeds: a sentence-transformers folder's own modules (pooling,
Normalize, Dense, default prompt), or, for a plain transformers model, the pooling its architecture implies.

Training and evaluation must see the same teacher: `talas eval` runs a sentence-transformers folder
through its own modules, so the cache and the student's default pooling read the same files here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from talas.errors import ModelError
from talas.models.encoder import load_config, resolve_model_path

# sentence-transformers' pooling modes (old flag suffixes and v6 names) → ours: the modes our Encoder pools.
ST_MODES = {"cls_token": "cls", "cls": "cls", "mean_tokens": "mean", "mean": "mean", "lasttoken": "last_token"}
# Decoder families whose embedders pool their last token (the appended EOS), even when saved as the bare model.
DECODER_TYPES = ("qwen", "llama", "mistral", "gemma", "phi", "gpt", "falcon", "olmo", "smollm")


@dataclass(frozen=True)
class FolderModules:
    """A sentence-transformers folder's embedding recipe, as our Encoder can reproduce it."""

    pooling: str
    normalize: bool
    dense: tuple[str, ...]  # the Dense modules' folders, in order (our Encoder does not apply them)
    prompt: str  # the default prompt (config_sentence_transformers.json), "" if none


def read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError) as exc:
        raise ModelError(f"Cannot read {path}: {exc}") from None


def st_folder_modules(folder: str) -> FolderModules | None:
    """The folder's sentence-transformers modules, or None if it is not a local sentence-transformers folder."""
    listing = os.path.join(folder, "modules.json")
    if not os.path.isfile(listing):
        return None
    pooling, normalize, dense = "", False, []
    for module in read_json(listing):
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        path = os.path.join(folder, module.get("path", ""))
        if kind == "Pooling":
            pooling = st_pooling(read_json(os.path.join(path, "config.json")), path)
        elif kind == "Normalize":
            normalize = True
        elif kind == "Dense":
            dense.append(module.get("path", ""))
    if not pooling:
        raise ModelError(f"{folder} has modules.json but no Pooling module; TALAS needs one to embed with its token states.")
    settings = os.path.join(folder, "config_sentence_transformers.json")
    prompt = ""
    if os.path.isfile(settings):
        config = read_json(settings)
        name = config.get("default_prompt_name")
        prompt = (config.get("prompts") or {}).get(name, "") if name else ""
    return FolderModules(pooling, normalize, tuple(dense), prompt)


def st_pooling(config: dict, path: str) -> str:
    """Our pooling name for a Pooling config: older ones set pooling_mode_* flags, sentence-transformers 6
    writes ``pooling_mode`` ("mean", or a list of modes)."""
    if "pooling_mode" in config:
        value = config["pooling_mode"]
        modes = [value] if isinstance(value, str) else list(value)
    else:
        modes = [flag.removeprefix("pooling_mode_") for flag, on in config.items() if flag.startswith("pooling_mode_") and on]
    chosen = [ST_MODES.get(mode) for mode in modes]
    if len(chosen) != 1 or chosen[0] is None:
        raise ModelError(f"{path}: pooling {', '.join(modes) or 'none'}; TALAS reproduces exactly one of cls, mean or "
                         "lasttoken pooling.")
    if config.get("include_prompt") is False:
        raise ModelError(f"{path}: include_prompt false (prompt tokens left out of pooling) is not supported by TALAS.")
    return chosen[0]


def is_decoder(config) -> bool:
    """Causal LMs (Qwen3, Llama, Mistral, ...) pool their last token; encoders (BERT-like) do not."""
    model_type = str(getattr(config, "model_type", "")).lower()
    architectures = getattr(config, "architectures", None) or []
    return (bool(getattr(config, "is_decoder", False)) or any(a.endswith("ForCausalLM") for a in architectures)
            or model_type.startswith(DECODER_TYPES))


def architecture_pooling(config) -> tuple[str, str]:
    """(pooling, why) for a plain transformers model: last_token for decoders, mean for encoders."""
    kind = getattr(config, "model_type", "?")
    if is_decoder(config):
        return "last_token", f"a {kind} decoder: its last token"
    return "mean", f"a {kind} encoder"


def resolve_pooling(name_or_path: str, requested: str, who: str) -> tuple[str, str]:
    """(pooling, why) for ``requested`` ("auto": the folder's sentence-transformers Pooling, else the architecture's)."""
    if requested != "auto":
        return requested, "as passed"
    path = resolve_model_path(name_or_path)
    modules = st_folder_modules(path) if os.path.isdir(path) else None
    if modules is not None:
        return modules.pooling, "from the folder's sentence-transformers Pooling module"
    pooling, kind = architecture_pooling(load_config(name_or_path))
    return pooling, f"{who} is {kind}; pass the pooling flag to choose another"
