"""What a method needs from the teacher, and the providers the training loop builds from it.

    needs = method_cls.teacher_needs(cfg)                 # a TeacherNeeds, e.g. token states of layer -1
    supply = provide(cfg, needs, data.unique_texts(), data.anchors, device)
    supply.fill(batch)                                    # once per batch, on the device

A method declares (``Method.teacher_needs``, may depend on its config):
- ``vectors``: pooled sentence vectors from the teacher cache ("cached"), from the teacher run on
  every batch ("online"), or none ("none");
- ``layers`` / ``attention_layers``: the online teacher's token states / attention maps of these
  layers (transformers' numbering, negative from the end);
- ``alignments``: token alignments between the student's and the teacher's tokenization of each
  text ("span", "dtw", "mined" from talas.align.groups, or names the method's ``aligners`` supplies);
- ``student_attentions``: load the student with eager attention so it can return attention maps.
The loop then provides exactly that: a cache only when vectors are cached, a teacher in memory
only when something is online (eager attention only when attentions are asked for), the teacher's
token ids in every batch whenever the teacher runs online, alignments packed by the collator.
Before training, a method gets a ``Prepared`` (the training texts, the loaded student, this supply)
for its ``aligners`` and ``initialise``: it never reads the data or loads a model itself.

The teacher is never part of the trained module: it is not a submodule of the method, so it is
never wrapped by DDP, saved in a checkpoint or seen by the optimiser; it runs in eval mode under
``torch.inference_mode`` (bf16 on CUDA).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from talas.align.groups import Group, dtw_groups, mined_pairs, span_groups
from talas.data.batch import Batch
from talas.errors import ConfigError
from talas.models.encoder import Encoder
from talas.models.logits import Logits

logger = logging.getLogger(__name__)

VECTOR_SOURCES = ("cached", "online", "none")
BUILTIN_ALIGNMENTS = ("span", "dtw", "mined")

#: An alignment function: (student TokenView, teacher TokenView) → groups (see talas.align.groups).
Aligner = Callable[..., list[Group]]


@dataclass(frozen=True)
class TeacherNeeds:
    """What a method needs from the teacher at every step (see the module docstring)."""

    vectors: str = "cached"
    layers: tuple[int, ...] = ()
    attention_layers: tuple[int, ...] = ()
    alignments: tuple[str, ...] = ()
    student_attentions: bool = False

    def __post_init__(self):
        if self.vectors not in VECTOR_SOURCES:
            raise ConfigError(f"TeacherNeeds.vectors must be one of {', '.join(VECTOR_SOURCES)}, got {self.vectors!r}.")
        if self.alignments and not (self.layers or self.attention_layers):
            raise ConfigError("TeacherNeeds: token alignments are only useful with the teacher's token states; declare layers too.")

    @property
    def online(self) -> bool:
        """Whether the teacher runs on every batch (and so is loaded for training)."""
        return self.vectors == "online" or bool(self.layers or self.attention_layers)

    def student_kwargs(self) -> dict:
        """Extra ``from_pretrained`` arguments for the student."""
        return {"attn_implementation": "eager"} if self.student_attentions else {}


def mined_groups(student, teacher) -> list[Group]:
    """EMO's reciprocal minimum-edit-distance pairs as one-to-one groups (the same packed layout)."""
    return [((s,), (t,)) for s, t in mined_pairs(student, teacher)]


def builtin_aligners(names: Sequence[str]) -> dict[str, Aligner]:
    """The alignment functions of talas.align.groups by name; an unknown name is a ConfigError."""
    if not names:
        return {}
    table = {"span": span_groups, "dtw": dtw_groups, "mined": mined_groups}
    unknown = [n for n in names if n not in table]
    if unknown:
        raise ConfigError(
            f"Unknown alignment(s) {', '.join(map(repr, unknown))}; built in: {', '.join(BUILTIN_ALIGNMENTS)} "
            "(a method supplies others through its aligners())."
        )
    return {n: table[n] for n in names}


class OnlineTeacher:
    """Runs the teacher on every batch and puts what the method declared into the batch.

    Inference tensors cannot be saved for backward, so each output is copied (as float32) outside
    inference mode; the copies enter the method's graph as constants.
    """

    def __init__(self, encoder: Encoder, needs: TeacherNeeds, normalize: bool = False):
        self.encoder = encoder
        self.needs = needs
        self.normalize = normalize

    @property
    def dim(self) -> int:
        return self.encoder.dim

    def fill(self, batch: Batch) -> None:
        """Sets ``teacher_vectors``/``teacher_mask`` (vectors "online"), ``teacher_hidden`` (one [N, Lt, D_T]
        per declared layer) and ``teacher_attentions`` (one [N, H, Lt, Lt] per declared layer)."""
        device = self.encoder.device
        feats = batch.teacher_features or self.encoder.tokenize(batch.texts)
        feats = {k: v.to(device, non_blocking=True) for k, v in feats.items()}
        batch.teacher_features = feats
        needs = self.needs
        first, inverse = distinct_texts(batch.text_ids, len(feats["input_ids"]), device)
        with torch.inference_mode():
            out = self.encoder.forward_tokens({k: v[first] for k, v in feats.items()}, needs.layers, needs.attention_layers)

        def spread(x: torch.Tensor) -> torch.Tensor:
            return x.to(torch.float32)[inverse]  # indexing copies: the result is an ordinary tensor

        if needs.vectors == "online":
            vectors = spread(out.pooled)
            if self.normalize:
                vectors = torch.nn.functional.normalize(vectors, dim=-1)
            batch.teacher_vectors = vectors
            batch.teacher_mask = torch.ones(len(vectors), dtype=torch.bool, device=vectors.device)
        if needs.layers:
            batch.teacher_hidden = tuple(spread(h) for h in out.hidden_states)
        if needs.attention_layers:
            batch.teacher_attentions = tuple(spread(a) for a in out.attentions)


def first_occurrences(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(index of the first occurrence of each distinct id, in the order of torch.unique; each entry's
    index into those)."""
    unique, inverse = torch.unique(ids, return_inverse=True)
    positions = torch.arange(len(ids), device=ids.device)
    first = torch.full((len(unique),), len(ids), device=ids.device).scatter_reduce_(0, inverse, positions, "amin")
    return first, inverse


def distinct_texts(text_ids: torch.Tensor | None, rows: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(first row of each distinct text, each row's index into those): the teacher is deterministic, so a
    text seen twice in a batch (the two dropout views of single-text data) is run once and copied.
    Without ids every row counts as distinct."""
    if text_ids is None:
        every = torch.arange(rows, device=device)
        return every, every
    return first_occurrences(text_ids.to(device))


def distinct_rows(text_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Row indices (ascending) of the first occurrence of each text among rows where ``mask``; [N] → [M]."""
    rows = torch.nonzero(mask).squeeze(1)
    first, _ = first_occurrences(text_ids[rows])
    return rows[first.sort().values]


@dataclass
class TeacherSupply:
    """The providers built for one run: a cache and its rows, an online teacher, or neither."""

    needs: TeacherNeeds
    dim: int | None = None
    cache: object | None = None
    rows: np.ndarray | None = None
    online: OnlineTeacher | None = None

    @property
    def token_encoder(self) -> Encoder | None:
        """The teacher whose token ids the collator adds to each batch (None: no online teacher)."""
        return self.online.encoder if self.online is not None else None

    def fill(self, batch: Batch) -> None:
        if self.online is not None:
            self.online.fill(batch)


@dataclass
class Prepared:
    """What the loop hands a method before training (``Method.aligners``, ``Method.initialise``), so a
    method never reads the data or loads a model itself: the unique training texts, the student as
    loaded (untrained, not yet on the device), the run's teacher supply and the device.

    ``student_logits()`` gives the untrained student's token logits and their width (its MLM head when
    its checkpoint has one, else pseudo-logits); the loop supplies it, loading the head only if called.
    """

    texts: Sequence[str]
    student: Encoder
    supply: TeacherSupply
    device: torch.device
    student_logits: Callable[[], tuple[Logits, int]] | None = None


def provide(cfg, needs: TeacherNeeds, texts: Sequence[str], anchors: Sequence[str], device: torch.device) -> TeacherSupply:
    """Build what ``needs`` asks for: the cache (built if missing) and/or the online teacher."""
    from talas.cache import ensure_cache
    from talas.models.teacher import load_teacher, teacher_setup

    supply = TeacherSupply(needs)
    if needs.vectors == "cached":
        supply.cache, supply.rows = ensure_cache(cfg, texts, anchors)
        supply.dim = supply.cache.dim
    if needs.online:
        extra = {"attn_implementation": "eager"} if needs.attention_layers else {}
        supply.online = OnlineTeacher(load_teacher(cfg, device, **extra), needs,
                                      getattr(cfg, "normalize_cache", False) or teacher_setup(cfg).normalize)
        supply.dim = supply.online.dim
    if supply.cache is None and supply.online is None:
        logger.info("No distillation term (student-only training): the teacher and its cache are not used.")
    return supply
