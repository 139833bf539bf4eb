"""Load a model + tokenizer by local path or hub id, pool token states into sentence vectors.

    from talas.models.encoder import Encoder
    enc = Encoder.load("path/or/hub-id", pooling="mean")
    vectors = enc.encode(["a sentence", "another"])       # [2, dim] float32

Pooling works for right-padded batches (BERT) and left-padded ones (decoder teachers such as
Qwen3-Embedding, whose last real token is the appended EOS).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from talas.errors import ConfigError, ModelError

POOLING_METHODS = ("cls", "mean", "last_token")


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, method: str) -> torch.Tensor:
    """Pool token states into one vector per sequence.

    hidden: [B, L, D]; attention_mask: [B, L] with 1 on real tokens, 0 on padding (left or right).
    Returns [B, D] in hidden's dtype.
    - cls: the first real token (position 0 with right padding, L - len with left padding);
    - mean: average of the real tokens;
    - last_token: the last real token (the appended EOS of decoder embedders).
    """
    mask = attention_mask.to(hidden.dtype)
    if method == "mean":
        summed = (hidden * mask.unsqueeze(-1)).sum(dim=1)
        return summed / mask.sum(dim=1, keepdim=True).clamp(min=1.0)
    positions = torch.arange(hidden.shape[1], device=hidden.device)
    real = attention_mask.bool()
    if method == "cls":
        # argmax returns the first maximum, i.e. the first real token whichever side is padded.
        index = real.int().argmax(dim=1)
    elif method == "last_token":
        index = torch.where(real, positions, torch.full_like(positions, -1)).amax(dim=1).clamp(min=0)
    else:
        raise ConfigError(f"Unknown pooling method {method!r}; choose one of {', '.join(POOLING_METHODS)}.")
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), index]


def resolve_model_path(name_or_path: str) -> str:
    """Return a local folder as is, or a hub id for users who have the hub; reject a missing path."""
    expanded = os.path.expanduser(name_or_path)
    if os.path.isdir(expanded):
        return expanded
    # Hub ids are "name" or "org/name"; anything else is a path the user expected to exist.
    if name_or_path.startswith((".", "/", "~", "\\")) or name_or_path.count("/") > 1 or os.path.exists(expanded):
        raise ModelError(
            f"Model path {name_or_path!r} does not exist. Pass an existing model folder "
            "(with config.json) or a hub id such as 'bert-base-uncased'."
        )
    return name_or_path


def load_tokenizer(name_or_path: str, **kwargs: Any):
    from transformers import AutoTokenizer

    path = resolve_model_path(name_or_path)
    try:
        return AutoTokenizer.from_pretrained(path, **kwargs)
    except OSError as exc:
        raise ModelError(f"Cannot load a tokenizer from {name_or_path!r}: {first_line(exc)}") from exc


def load_model(name_or_path: str, dtype: torch.dtype | None = None, **kwargs: Any) -> nn.Module:
    from transformers import AutoModel

    path = resolve_model_path(name_or_path)
    try:
        return AutoModel.from_pretrained(path, dtype=dtype, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelError(f"Cannot load a model from {name_or_path!r}: {first_line(exc)}") from exc


def load_config(name_or_path: str):
    """The model's config (cheap: no weights), e.g. to read hidden_size without loading the model."""
    from transformers import AutoConfig

    path = resolve_model_path(name_or_path)
    try:
        return AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ModelError(f"Cannot read the model config of {name_or_path!r}: {first_line(exc)}") from exc


def check_model_folder(name_or_path: str, flag: str) -> tuple[Any, int | None]:
    """Fail now, naming the folder and what is missing, if it cannot load as a model (before any cache
    is built); return its config and the most tokens it accepts (None: no limit known). Reads the
    config and the tokenizer only, never the weights."""
    path = resolve_model_path(name_or_path)
    if os.path.isdir(path):
        files = os.listdir(path)
        hint = "Pass the folder that save_pretrained wrote (config.json, tokenizer files, weights)."
        if "config.json" not in files:
            raise ModelError(f"{flag} {name_or_path!r} is not a model folder: it has no config.json. {hint}")
        if not any(f.endswith((".safetensors", ".bin")) for f in files):
            raise ModelError(f"{flag} {name_or_path!r} has no weights (no *.safetensors or *.bin file). {hint}")
    config = load_config(name_or_path)
    try:
        tokenizer = load_tokenizer(name_or_path)
    except Exception as exc:  # tokenizer files fail in many ways (OSError, ValueError, conversion errors)
        raise ModelError(f"{flag} {name_or_path!r}: its tokenizer cannot be loaded ({first_line(exc)}).") from None
    # RoBERTa-style models reserve positions for padding, so the tokenizer's limit can be the lower one.
    limits = [n for n in (getattr(config, "max_position_embeddings", None), tokenizer.model_max_length) if n and n < 10**9]
    return config, min(limits) if limits else None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def layer_list(model: nn.Module) -> nn.ModuleList:
    """The transformer block list of a BERT-, MPNet-, DistilBERT- or decoder-style model."""
    count = getattr(model.config, "num_hidden_layers", None) or getattr(model.config, "n_layers", None)
    for name in ("encoder.layer", "layers", "transformer.layer", "encoder.layers"):
        module: Any = model
        for part in name.split("."):
            module = getattr(module, part, None)
            if module is None:
                break
        if isinstance(module, nn.ModuleList) and (count is None or len(module) == count):
            return module
    raise ModelError(f"Cannot find the transformer layers of {type(model).__name__} to truncate it.")


LayerChoice = int | Sequence[int]


def keep_layers(model: nn.Module, choice: LayerChoice) -> None:
    """Keep some of the encoder's blocks, in place (a standard small-student init): its first ``choice``
    blocks (an int, ``--student_num_layers``) or the listed 0-based blocks (``--student_layers``, e.g.
    (0, 3): spread-out layers keep more of the model's depth than the first ones)."""
    layers = layer_list(model)
    kept = chosen_layers(choice, len(layers))
    blocks = [layers[i] for i in kept]
    del layers[:]
    layers.extend(blocks)
    model.config.num_hidden_layers = len(kept)
    if getattr(model.config, "layer_types", None) is not None:
        model.config.layer_types = [model.config.layer_types[i] for i in kept]


def chosen_layers(choice: LayerChoice, total: int) -> list[int]:
    """The 0-based blocks ``choice`` keeps of a model with ``total`` blocks; a ConfigError if it cannot."""
    if isinstance(choice, int):
        if not 1 <= choice <= total:
            raise ConfigError(f"--student_num_layers must be between 1 and {total} for this model, got {choice}.")
        return list(range(choice))
    kept = list(choice)
    if not kept or kept != sorted(set(kept)) or not 0 <= kept[0] <= kept[-1] < total:
        raise ConfigError(f"--student_layers {','.join(map(str, kept))}: list blocks of this model (0..{total - 1}) "
                          "in increasing order, each once.")
    return kept


def layer_choice(cfg) -> LayerChoice | None:
    """The student's kept blocks from its config: --student_layers, else --student_num_layers, else None (all)."""
    return tuple(cfg.student_layers) or cfg.student_num_layers or None


def check_dropout(p: float) -> None:
    if not 0 <= p < 1:
        raise ConfigError(f"--student_dropout must be in [0, 1) (or -1 to keep the model's own), got {p}.")


def set_dropout(model: nn.Module, p: float) -> None:
    """Set every dropout layer's probability (BERT-style attention reads its module's p too).

    Pure distillation regresses onto fixed teacher vectors, where dropout is only noise; 0 helps there.
    """
    check_dropout(p)
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = p


def tokenizer_appends_eos(tokenizer) -> bool:
    """Whether the tokenizer itself ends every text with an end token: its EOS or another special token.

    Qwen3-Embedding's tokenizer appends <|endoftext|> (its pad token) while its ``eos_token`` is
    <|im_end|>: comparing with the EOS alone took that for "no end token", and the Encoder appended
    <|im_end|> after it, pooling a token the embedder was never trained to summarise into.
    """
    ids = tokenizer("hello")["input_ids"]
    plain = tokenizer("hello", add_special_tokens=False)["input_ids"]
    # A BOS-only tokenizer (Llama, Gemma) ends the text as the plain encoding does: no end token added.
    return len(ids) > 0 and ids[-1] in set(tokenizer.all_special_ids) and ids[-len(plain):] != plain


@dataclass
class EncoderOutput:
    """What ``Encoder.forward_tokens`` returns for a padded batch of B texts, L tokens.

    pooled: [B, D] sentence vectors (the Encoder's pooling); tokens: [B, L, D] last-layer token
    states; attention_mask: [B, L] (1 = real token, left or right padding as the tokenizer pads);
    hidden_states: one [B, L, D] tensor per requested layer, in the order asked (transformers'
    numbering: 0 = embeddings, i = after block i, -1 = last); attentions: one [B, H, L, L]
    tensor (rows: queries) per requested attention layer (0 = first block, -1 = last).
    """

    pooled: torch.Tensor
    tokens: torch.Tensor
    attention_mask: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] = ()
    attentions: tuple[torch.Tensor, ...] = ()


@dataclass(frozen=True)
class TokenEncoding:
    """One text as the Encoder feeds it to its model: unpadded ids and what alignment needs.

    ``offsets`` are character spans in ``prompt + text`` ((0, 0) for specials; None for slow
    tokenizers), ``special`` marks special tokens (an appended EOS included).
    """

    ids: tuple[int, ...]
    tokens: tuple[str, ...]
    offsets: tuple[tuple[int, int], ...] | None
    special: tuple[bool, ...]


def pick_layers(outputs: Sequence[torch.Tensor], layers: Sequence[int], kind: str) -> list[torch.Tensor]:
    count = len(outputs)
    bad = [i for i in layers if not -count <= i < count]
    if bad:
        raise ConfigError(f"{kind} layer(s) {bad} do not exist: this model returns {count} (valid indices {-count}..{count - 1}).")
    return [outputs[i] for i in layers]


class Encoder(nn.Module):
    """A transformers model + tokenizer + pooling: texts in, sentence vectors out.

    ``prompt`` is prepended to every text (e.g. a teacher instruction). With last-token pooling,
    a decoder tokenizer that does not append its EOS gets it appended here, so the pooled token
    is the EOS the embedder was trained to summarise into.
    """

    def __init__(self, model: nn.Module, tokenizer, pooling: str, max_length: int, prompt: str = ""):
        super().__init__()
        if pooling not in POOLING_METHODS:
            raise ConfigError(f"Unknown pooling method {pooling!r}; choose one of {', '.join(POOLING_METHODS)}.")
        self.model = model
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.max_length = max_length
        self.prompt = prompt
        self.append_eos = pooling == "last_token" and tokenizer.eos_token_id is not None and not tokenizer_appends_eos(tokenizer)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token

    @classmethod
    def load(
        cls,
        name_or_path: str,
        pooling: str,
        max_length: int = 256,
        prompt: str = "",
        dtype: torch.dtype | None = None,
        layers: LayerChoice | None = None,
        **model_kwargs: Any,
    ) -> Encoder:
        tokenizer = load_tokenizer(name_or_path)
        model = load_model(name_or_path, dtype=dtype, **model_kwargs)
        if layers:
            keep_layers(model, layers)
        return cls(model, tokenizer, pooling, max_length, prompt)

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Unpadded token ids: prompt prefixed, truncated to max_length, EOS appended when needed."""
        texts = [self.prompt + t for t in texts] if self.prompt else list(texts)
        limit = self.max_length - int(self.append_eos)
        ids = self.tokenizer(texts, truncation=True, max_length=limit, padding=False)["input_ids"]
        if self.append_eos:
            ids = [x + [self.tokenizer.eos_token_id] for x in ids]
        return ids

    def end_token(self) -> str:
        """For last-token pooling, the token every text ends with as fed to the model (the tokenizer's own end
        token, or the EOS appended here; "(none)": texts end with their own last token); "" for mean/cls."""
        if self.pooling != "last_token":
            return ""
        last = self.token_ids(["hello"])[0][-1]
        return self.tokenizer.convert_ids_to_tokens(last) if last in self.tokenizer.all_special_ids else "(none)"

    def token_encodings(self, texts: Sequence[str]) -> list[TokenEncoding]:
        """Like ``token_ids`` (same ids, same truncation) plus token strings, offsets and special marks."""
        full = [self.prompt + t for t in texts] if self.prompt else list(texts)
        limit = self.max_length - int(self.append_eos)
        fast = getattr(self.tokenizer, "is_fast", False)
        enc = self.tokenizer(full, truncation=True, max_length=limit, padding=False, return_special_tokens_mask=True,
                             return_offsets_mapping=fast)
        out = []
        for row, ids in enumerate(enc["input_ids"]):
            special = [bool(x) for x in enc["special_tokens_mask"][row]]
            offsets = [tuple(span) for span in enc["offset_mapping"][row]] if fast else None
            if self.append_eos:
                ids = ids + [self.tokenizer.eos_token_id]
                special.append(True)
                if offsets is not None:
                    offsets.append((0, 0))
            out.append(TokenEncoding(tuple(ids), tuple(self.tokenizer.convert_ids_to_tokens(ids)),
                                     None if offsets is None else tuple(offsets), tuple(special)))
        return out

    @property
    def uncased(self) -> bool:
        """Whether the tokenizer lower-cases its input (then token strings carry no case to match)."""
        return self.tokenizer("Hello World")["input_ids"] == self.tokenizer("hello world")["input_ids"]

    def pad(self, batch_ids: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
        """Pad to the longest sequence of the batch on the tokenizer's padding side."""
        width = max(len(x) for x in batch_ids)
        input_ids = torch.full((len(batch_ids), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(batch_ids), width), dtype=torch.long)
        left = self.tokenizer.padding_side == "left"
        for row, ids in enumerate(batch_ids):
            span = slice(width - len(ids), width) if left else slice(0, len(ids))
            input_ids[row, span] = torch.as_tensor(ids, dtype=torch.long)
            mask[row, span] = 1
        return {"input_ids": input_ids, "attention_mask": mask}

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokenize with dynamic padding (to the longest text of the batch, at most max_length)."""
        return self.pad(self.token_ids(texts))

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """Pooled sentence vectors [B, D] for a tokenized batch already on the model's device."""
        hidden = self.model(input_ids=features["input_ids"], attention_mask=features["attention_mask"]).last_hidden_state
        return pool(hidden, features["attention_mask"], self.pooling)

    def forward_tokens(
        self, features: dict[str, torch.Tensor], layers: Sequence[int] = (), attention_layers: Sequence[int] = ()
    ) -> EncoderOutput:
        """Token-level outputs (see EncoderOutput); asks the model only for what is requested.

        Attentions need the model loaded with ``attn_implementation="eager"`` (fused kernels never
        materialise them); a method declares them so the loop loads it that way.
        """
        if attention_layers and getattr(self.model.config, "_attn_implementation", "eager") != "eager":
            raise ModelError(
                f"Attention maps were requested from {type(self.model).__name__}, loaded with "
                f"{self.model.config._attn_implementation!r} attention, which does not return them. "
                'Load it with attn_implementation="eager" (declare the attentions in the method\'s TeacherNeeds).'
            )
        out = self.model(input_ids=features["input_ids"], attention_mask=features["attention_mask"],
                         output_hidden_states=bool(layers), output_attentions=bool(attention_layers))
        mask = features["attention_mask"]
        tokens = out.last_hidden_state
        return EncoderOutput(
            pooled=pool(tokens, mask, self.pooling), tokens=tokens, attention_mask=mask,
            hidden_states=tuple(pick_layers(out.hidden_states, layers, "hidden-state")) if layers else (),
            attentions=tuple(pick_layers(out.attentions, attention_layers, "attention")) if attention_layers else (),
        )

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        """Embed texts in length-sorted batches (little padding); rows come back in input order."""
        was_training = self.training
        self.eval()
        ids = self.token_ids(texts)
        order = sorted(range(len(texts)), key=lambda i: -len(ids[i]))
        out: torch.Tensor | None = None
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            feats = {k: v.to(self.device) for k, v in self.pad([ids[i] for i in idx]).items()}
            vecs = self(feats).float().cpu()
            if out is None:
                out = torch.empty(len(texts), vecs.shape[1])
            out[idx] = vecs
        self.train(was_training)
        return out if out is not None else torch.empty(0, self.dim)
