"""Loading what `talas eval` scores: a model folder or hub id as one ``encode(texts)`` per role.

A sentence-transformers folder (with modules.json) runs its own modules (pooling, Dense,
Normalize; a Router sends queries and documents their own ways); any other transformers model
needs a pooling and is wrapped in TALAS's Encoder.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from talas.errors import ConfigError, ModelError
from talas.models.encoder import POOLING_METHODS, Encoder, resolve_model_path

logger = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16", "float16")
ROLES = ("text", "query", "document")


def load_encode(
    path: str, pooling: str | None, prompt: str | None, max_length: int | None, batch_size: int, device: str, dtype: str
) -> tuple[dict[str, Callable[[list[str]], Any]], dict[str, Any]]:
    """Load a model; return its ``encode(texts)`` per role (text, query, document) and how it encodes.

    A sentence-transformers folder encodes queries with ``encode_query`` and documents with
    ``encode_document`` (its "query"/"document" prompts and Router routes); other models encode
    every role alike.
    """
    import torch

    torch_dtype = getattr(torch, dtype)
    if os.path.isfile(os.path.join(os.path.expanduser(path), "modules.json")):
        from sentence_transformers import SentenceTransformer

        try:
            model = SentenceTransformer(os.path.expanduser(path), device=device)
        except (OSError, ValueError) as exc:
            raise ModelError(f"Cannot load the sentence-transformers folder {path!r}: {exc}") from exc
        model.to(torch_dtype)
        if max_length:
            model.max_seq_length = max_length
        if pooling:
            logger.warning(f"note: --pooling ignored for {path}: its modules.json sets the pooling.")
        # sentence-transformers 6 renamed get_sentence_embedding_dimension (5.x has only the old name).
        dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        info = {"kind": "sentence-transformers", "pooling": "modules.json", "max_length": model.max_seq_length, "dim": dimension()}

        def with_role(method: Callable[..., Any]) -> Callable[[list[str]], np.ndarray]:
            def encode(texts: list[str]) -> np.ndarray:
                return method(texts, batch_size=batch_size, prompt=prompt or None, show_progress_bar=False, convert_to_numpy=True)
            return encode

        encoders = {"text": with_role(model.encode), "query": with_role(model.encode_query),
                    "document": with_role(model.encode_document)}
    else:
        if not pooling:
            raise ConfigError(
                f"{path} is not a sentence-transformers folder (no modules.json): pass --pooling "
                f"({', '.join(POOLING_METHODS)}) to say how token states become a sentence vector."
            )
        encoder = Encoder.load(path, pooling, max_length or 256, prompt or "", dtype=torch_dtype).to(device)
        limit = position_limit(encoder)
        if max_length and max_length > limit:
            raise ConfigError(f"--max_length {max_length} exceeds what {path} can embed ({limit} tokens); pass at most {limit}.")
        encoder.max_length = min(encoder.max_length, limit)
        info = {"kind": "transformers", "pooling": pooling, "max_length": encoder.max_length, "dim": encoder.dim}

        def encode(texts: list[str]) -> np.ndarray:
            return encoder.encode(texts, batch_size=batch_size).numpy()

        encoders = dict.fromkeys(ROLES, encode)
    return encoders, {**info, "prompt": prompt or ""}


def check_model_path(path: str, pooling: str | None) -> None:
    """A missing folder says so (not "no modules.json: pass --pooling"), before anything loads."""
    resolve_model_path(path)  # "./x", "/x", "a/b/c": a path, and it does not exist
    if not os.path.isdir(os.path.expanduser(path)) and not pooling:
        raise ModelError(
            f"Model {path!r} is not a folder here ({os.getcwd()}): check the path. For a hub id of a plain "
            f"transformers model, pass --pooling ({', '.join(POOLING_METHODS)})."
        )


def position_limit(encoder: Encoder) -> int:
    """Longest input the model has position embeddings for (a longer batch crashes deep inside it)."""
    limits = [getattr(encoder.model.config, "max_position_embeddings", None), encoder.tokenizer.model_max_length]
    # Tokenizers without a limit report a huge sentinel (int(1e30)); rotary models have no table to overrun.
    return min((int(x) for x in limits if x and x < 1_000_000), default=1_000_000)
