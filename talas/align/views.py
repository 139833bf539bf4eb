"""A text as one tokenizer saw it: a ``TokenView`` of normalised pieces, character spans and roles.

    enc = tok(prompt + text, return_offsets_mapping=True, return_special_tokens_mask=True)
    view = token_view(text, tok.convert_ids_to_tokens(enc["input_ids"]), enc["offset_mapping"],
                      enc["special_tokens_mask"], lowercase=True, prompt_chars=len(prompt))

Pure functions (no torch, no model calls); the alignments of two views are in talas.align.groups.
For every token a normalised *piece* (the string compared across tokenizers), a character *span*
in the original text and a *role*. Choices:

- **Pieces come from the text, not from the token string**, when the tokenizer gives offsets (every
  fast tokenizer does): ``text[start:end]``, whitespace trimmed. This makes ``##`` (WordPiece),
  ``Ġ``/``Ċ`` (byte-level BPE) and ``▁`` (SentencePiece) markers vanish by construction, keeps
  accents that an uncased BERT strips (``café`` on both sides), and handles byte-level tokens that
  are not valid UTF-8 alone: the two or four byte tokens of one emoji or CJK character share that
  character's span and piece, so nothing is decoded and the rest of the text is untouched.
  Without offsets (slow tokenizers) the piece is the token string with a leading ``##`` and every
  ``Ġ``, ``Ċ``, ``ĉ``, ``▁`` removed, and the span is found by searching the accent- and case-folded
  piece forward in the folded text (a byte-level token of a non-ASCII character is then not found
  and only the string methods (b), (c) use it). Prompts need offsets.
- **Lower-casing** (``lowercase=True``) folds pieces with ``str.lower``; pass the same value for both
  views of a pair (True when the student is uncased), so "The" and "the" match.
- **Roles.** "text": a token of the text; "prompt": a token lying in the instruction prefix
  (``prompt_chars``); "bos": a special token named in ``bos_tokens`` ([CLS], <s>, BOS); "eos": one in
  ``eos_tokens`` ([SEP], </s>, EOS, <|endoftext|>); "other": any other special token. A name in both
  sets is "bos" before the first non-special token and "eos" after it. Whitespace-only tokens
  (``Ġ``, ``Ċ``) are "text" with piece "" and span (0, 0): they carry no characters to match.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

BOS_TOKENS = frozenset({"[CLS]", "<s>", "<bos>", "<|begin_of_text|>", "<|startoftext|>"})
EOS_TOKENS = frozenset({"[SEP]", "</s>", "<eos>", "<|endoftext|>", "<|end_of_text|>", "<|im_end|>", "<|eot_id|>"})
ROLES = frozenset({"text", "bos", "eos", "prompt", "other"})
_MARKERS = str.maketrans("", "", "ĠĊĉ▁")
# Without offsets, a piece is searched at most this many folded characters past the previous one,
# so that a garbled piece ([UNK]) cannot make the search jump to a far-away repeat of a word.
_MAX_SKIP = 16


@dataclass(frozen=True)
class TokenView:
    """One text as one tokenizer saw it, unpadded, in the model's own order (see the module docstring)."""

    pieces: tuple[str, ...]  # normalised text of each token; "" = nothing to match
    spans: tuple[tuple[int, int], ...]  # whitespace-trimmed character span in the original text; (0, 0) = none
    role: tuple[str, ...]  # "text", "bos", "eos", "prompt", "other"

    def __post_init__(self):
        if not len(self.pieces) == len(self.spans) == len(self.role):
            raise ValueError(f"TokenView: {len(self.pieces)} pieces, {len(self.spans)} spans, {len(self.role)} roles; need one each per token.")
        if not set(self.role) <= ROLES:
            raise ValueError(f"TokenView: unknown roles {sorted(set(self.role) - ROLES)}; use {sorted(ROLES)}.")

    def __len__(self) -> int:
        return len(self.pieces)


def token_view(
    text: str,
    tokens: Sequence[str],
    offsets: Sequence[Sequence[int]] | None,
    special_mask: Sequence[bool | int],
    *,
    lowercase: bool,
    prompt_chars: int = 0,
    bos_tokens: frozenset[str] | set[str] = BOS_TOKENS,
    eos_tokens: frozenset[str] | set[str] = EOS_TOKENS,
) -> TokenView:
    """Build the view of ``text`` from one tokenizer's output for ``prompt + text``.

    ``tokens``: ``tokenizer.convert_ids_to_tokens(ids)``; ``offsets``: the fast tokenizer's
    ``offset_mapping`` for ``prompt + text`` (None for a slow tokenizer); ``special_mask``: its
    ``special_tokens_mask``; ``prompt_chars``: ``len(prompt)``, subtracted from the offsets.
    """
    n = len(tokens)
    if len(special_mask) != n or (offsets is not None and len(offsets) != n):
        raise ValueError(f"token_view: {n} tokens but {len(special_mask)} special flags and "
                         f"{'no' if offsets is None else len(offsets)} offsets; pass one of each per token.")
    if offsets is None and prompt_chars:
        raise ValueError("token_view: a prompt needs offsets to tell prompt tokens from text tokens; use a fast tokenizer.")
    first_plain = next((k for k in range(n) if not special_mask[k]), n)
    roles, spans = [], []
    for k in range(n):
        if special_mask[k]:
            roles.append(_special_role(tokens[k], k < first_plain, bos_tokens, eos_tokens))
            spans.append((0, 0))
        elif offsets is None:
            roles.append("text")
            spans.append((0, 0))
        else:
            start, end = int(offsets[k][0]), int(offsets[k][1])
            if end <= prompt_chars and start < prompt_chars:
                roles.append("prompt")
                spans.append((0, 0))
            else:
                roles.append("text")
                spans.append(_trim(text, max(start - prompt_chars, 0), end - prompt_chars))
    if offsets is None:
        spans = _locate(text, [_strip_markers(t) if r == "text" else "" for t, r in zip(tokens, roles, strict=True)])
    pieces = []
    for k in range(n):
        start, end = spans[k]
        if roles[k] != "text":
            piece = ""
        elif end > start:
            piece = text[start:end]
        elif offsets is None:
            piece = _strip_markers(tokens[k]).strip()
        else:
            piece = ""
        pieces.append(piece.lower() if lowercase else piece)
    return TokenView(tuple(pieces), tuple(spans), tuple(roles))


def _special_role(token: str, before_text: bool, bos_tokens, eos_tokens) -> str:
    is_bos, is_eos = token in bos_tokens, token in eos_tokens
    if is_bos and is_eos:
        return "bos" if before_text else "eos"
    return "bos" if is_bos else "eos" if is_eos else "other"


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """The span without surrounding whitespace; (0, 0) when nothing else is left."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else (0, 0)


def _strip_markers(token: str) -> str:
    return (token[2:] if token.startswith("##") and len(token) > 2 else token).translate(_MARKERS)


def _fold(s: str) -> tuple[str, list[int]]:
    """``s`` without accents, case and whitespace, and the index in ``s`` of every folded character."""
    chars, index = [], []
    for i, c in enumerate(s):
        for d in unicodedata.normalize("NFKD", c).casefold():
            if not unicodedata.combining(d) and not d.isspace():
                chars.append(d)
                index.append(i)
    return "".join(chars), index


def _locate(text: str, pieces: list[str]) -> list[tuple[int, int]]:
    """Spans of marker-stripped token strings, found in order in ``text`` (slow tokenizers only)."""
    folded, index = _fold(text)
    spans, cursor = [], 0
    for piece in pieces:
        needle = _fold(piece)[0]
        at = folded.find(needle, cursor, cursor + _MAX_SKIP + len(needle)) if needle else -1
        if at < 0:
            spans.append((0, 0))
            continue
        spans.append((index[at], index[at + len(needle) - 1] + 1))
        cursor = at + len(needle)
    return spans


def encoding_view(text: str, encoding, *, lowercase: bool, prompt_chars: int = 0) -> TokenView:
    """The ``TokenView`` of one model's encoding of ``prompt + text``: anything with ``tokens``, ``offsets``
    (None from a slow tokenizer) and ``special`` (talas.models.encoder.TokenEncoding). The collator and
    CDM's weight pass both build views here, so they always agree."""
    offsets = None if encoding.offsets is None else list(encoding.offsets)
    return token_view(text, list(encoding.tokens), offsets, list(encoding.special), lowercase=lowercase, prompt_chars=prompt_chars)


def view_of(tokenizer, text: str, *, lowercase: bool, prompt: str = "", max_length: int | None = None) -> TokenView:
    """The ``TokenView`` of ``text`` as ``tokenizer`` (a transformers tokenizer) encodes ``prompt + text``."""
    fast = getattr(tokenizer, "is_fast", False)
    enc = tokenizer(prompt + text, return_offsets_mapping=fast, return_special_tokens_mask=True,
                    truncation=max_length is not None, max_length=max_length)
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"])
    specials = {tokenizer.bos_token, getattr(tokenizer, "cls_token", None)} - {None}
    ends = {tokenizer.eos_token, getattr(tokenizer, "sep_token", None)} - {None}
    return token_view(text, tokens, enc["offset_mapping"] if fast else None, enc["special_tokens_mask"],
                      lowercase=lowercase, prompt_chars=len(prompt),
                      bos_tokens=BOS_TOKENS | specials, eos_tokens=EOS_TOKENS | ends)
