"""EMO (Truong et al., EMNLP 2025): distillation by intra-model relations (attention CKA) and optimal transport.

    talas train --method emo --student_model_name <student> --teacher_model_name <teacher>

L = (1 − α)·L_task + α·(w_ira·L_ira + w_ot·L_ot) on MinED-paired tokens of the online teacher.
Owns EmoConfig, the content-token filter (stop words), the layer map and EmoMethod. Formulas,
defaults and deviations from the paper: docs/methods.md#emo.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import torch

from talas.align.groups import Group
from talas.align.views import TokenView
from talas.config import option
from talas.data.batch import Batch
from talas.errors import ConfigError
from talas.losses.attention import emo_importance, emo_top_m, linear_cka
from talas.losses.transport import emo_masses, emo_ot_cost, sinkhorn
from talas.methods.base import Method
from talas.models.projection import ProjectionConfig, projection_for
from talas.teacher.provision import Aligner, Prepared, TeacherNeeds, mined_groups
from talas.teacher.ridge import fit_mean_states

logger = logging.getLogger(__name__)


@dataclass
class EmoConfig(ProjectionConfig):
    alpha: float = option(0.5, "Weight of the distillation terms: (1 - alpha)·task + alpha·(w_ira·IRA + w_ot·OT).", at_least=0)
    w_ira: float = option(0.1, "Weight of the attention-relation term (1 - linear CKA).", at_least=0)
    w_ot: float = option(1.0, "Weight of the optimal-transport term between token states.", at_least=0)
    ira_layers: int = option(2, "Last student layers whose attention is matched (each to its mapped teacher layer).", at_least=1)
    top_m_divisor: int = option(3, "IRA uses the top n_map // this many mapped tokens by importance.", at_least=1)
    ot_epsilon: float = option(0.1, "Entropic regularisation of Sinkhorn.", above=0)
    ot_max_iter: int = option(100, "Most Sinkhorn iterations.", at_least=1)
    ot_tol: float = option(1e-5, "Sinkhorn stops when every text's row-marginal L1 error is below this.", above=0)
    ot_cost: str = option(
        "softmax", "Transport cost: softmax (published: 1 - softmax over the text's teacher tokens of s·P(h)/√d, blind to "
        "the text's mean teacher state) or cosine (1 - cos(s, P(h))).", ("softmax", "cosine"),
    )
    skip_punctuation: bool = option(True, "Exclude pieces without a letter or digit (punctuation) from importance, like stop words.")


# English function words (whole words, lower case): they sink attention without carrying meaning. The
# contraction halves ("didn", "t") cover texts written "didn t", as much of the bundled data is.
STOP_WORDS = frozenset("""
a about above after again against all am an and any are aren't as at be because been before being below
between both but by can can't cannot could couldn't did didn't do does doesn't doing don't down during each
few for from further had hadn't has hasn't have haven't having he he'd he'll he's her here here's hers herself
him himself his how how's i i'd i'll i'm i've if in into is isn't it it's its itself just let's me more most
mustn't my myself no nor not now of off on once only or other ought our ours ourselves out over own same
shan't she she'd she'll she's should shouldn't so some such than that that's the their theirs them themselves
then there there's these they they'd they'll they're they've this those through to too under until up very
was wasn't we we'd we'll we're we've were weren't what what's when when's where where's which while who who's
whom why why's will with won't would wouldn't you you'd you'll you're you've your yours yourself yourselves
s t d ll m re ve ain aren couldn didn doesn don hadn hasn haven isn mightn mustn needn shan shouldn wasn weren won wouldn
""".split())


def content_positions(view: TokenView, skip_punctuation: bool = True) -> tuple[int, ...]:
    """Positions of the tokens that may carry importance: text tokens that are not part of a stop
    word, contain no digit and (with ``skip_punctuation``) have a letter or digit.

    A word is a maximal run of tokens whose character spans touch ("play" + "ing", "don" + "'" + "t"),
    so a sub-word piece that happens to spell a stop word ("a" in "a" + "rena") is not one.
    """
    keep, word = [], []
    for k in range(len(view) + 1):
        piece = view.pieces[k] if k < len(view) else ""
        text = k < len(view) and view.role[k] == "text" and bool(piece)
        if word and not (text and view.spans[k][0] == view.spans[word[-1]][1] > 0):
            if "".join(view.pieces[j] for j in word).lower() not in STOP_WORDS:
                keep += [j for j in word if not any(c.isdigit() for c in view.pieces[j])
                         and (not skip_punctuation or any(c.isalnum() for c in view.pieces[j]))]
            word = []
        if text:
            word.append(k)
    return tuple(keep)


def layer_map(student_layers: int, teacher_layers: int, count: int) -> list[tuple[int, int]]:
    """(student layer, teacher layer) of the last ``count`` student layers, 0-based blocks:
    l → (l+1)·⌊L_T/L_S⌋ − 1, except the last student layer → the last teacher layer."""
    if not 1 <= count <= student_layers:
        raise ConfigError(f"--ira_layers {count} must be between 1 and the student's {student_layers} layers.")
    if teacher_layers < student_layers:
        raise ConfigError(f"EMO maps each student layer onto a teacher layer: the teacher has {teacher_layers} "
                          f"layers, fewer than the student's {student_layers}. Use --student_num_layers {teacher_layers} or fewer.")
    step = teacher_layers // student_layers
    return [(layer, teacher_layers - 1 if layer == student_layers - 1 else (layer + 1) * step - 1)
            for layer in range(student_layers - count, student_layers)]


def model_layers(cfg: EmoConfig) -> tuple[int, int]:
    """(student layers as trained, teacher layers), from the configs alone (no weights)."""
    from talas.models.encoder import load_config

    student = int(load_config(cfg.student_model_name).num_hidden_layers)
    kept = len(cfg.student_layers) or min(cfg.student_num_layers or student, student)
    return kept, int(load_config(cfg.teacher_model_name).num_hidden_layers)


class EmoMethod(Method):
    name = "emo"
    config_class = EmoConfig

    def __init__(self, cfg: EmoConfig, student, teacher_dim: int):
        super().__init__(cfg, student, teacher_dim)
        self.projection = projection_for(cfg.projection, student.dim, teacher_dim) if self.uses_teacher(cfg) else None
        if self.uses_teacher(cfg):
            self.layers = layer_map(*model_layers(cfg), cfg.ira_layers)
            self.teacher_attention_layers = self.teacher_needs(cfg).attention_layers

    @classmethod
    def validate(cls, cfg: EmoConfig) -> None:
        if cfg.alpha > 1:
            raise ConfigError(f"--alpha {cfg.alpha} must be in [0, 1]: L = (1 - alpha)·task + alpha·(w_ira·IRA + w_ot·OT).")
        if cfg.alpha > 0 and cfg.w_ira == 0 and cfg.w_ot == 0:
            raise ConfigError("--w_ira and --w_ot are both 0: nothing to distil. Use --alpha 0 for the student-only baseline.")

    @classmethod
    def uses_teacher(cls, cfg: EmoConfig) -> bool:
        return cfg.alpha > 0

    @classmethod
    def needs_pairs(cls, cfg: EmoConfig) -> bool:
        return cfg.alpha < 1

    @classmethod
    def teacher_needs(cls, cfg: EmoConfig) -> TeacherNeeds:
        if not cls.uses_teacher(cfg):
            return TeacherNeeds(vectors="none")
        student_layers, teacher_layers = model_layers(cfg)
        mapped = [t for _, t in layer_map(student_layers, teacher_layers, cfg.ira_layers)] if cfg.w_ira > 0 else []
        # The last teacher layer always: importance comes from it. Sorted, so index k of the
        # returned attentions is attention_layers[k].
        return TeacherNeeds(vectors="none", layers=(-1,) if cfg.w_ot > 0 else (), attention_layers=tuple(sorted({*mapped, teacher_layers - 1})),
                            alignments=("mined", "content"), student_attentions=cfg.w_ira > 0)

    @classmethod
    def aligners(cls, cfg: EmoConfig, prepared: Prepared | None) -> dict[str, Aligner]:
        if not cls.uses_teacher(cfg):
            return {}
        skip = cfg.skip_punctuation

        def content(student: TokenView, teacher: TokenView) -> list[Group]:
            # Not an alignment: one group holding the teacher's content tokens, packed by the
            # collator once per text like the MinED pairs (it sees the token pieces; the method does not).
            return [((), content_positions(teacher, skip))]

        return {"mined": mined_groups, "content": content}

    def initialise(self, prepared: Prepared) -> None:
        """``--projection_init ridge``: start P from a ridge fit (talas.teacher.ridge.fit_mean_states)."""
        if self.projection is None or self.cfg.projection_init != "ridge" or self.cfg.w_ot == 0:
            return
        cfg = self.cfg
        count, fitted = fit_mean_states(self.projection, cfg.projection, self.student, prepared.supply, prepared.texts,
                                        cfg.projection_init_texts, cfg.seed)
        logger.info(f"Projection ({cfg.projection}) initialised by ridge regression on {count} texts (mean cosine of the fitted mean states {fitted:.3f}).")

    def lr_overrides(self) -> dict[str, float]:
        return {"projection.": self.cfg.projection_lr}

    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cfg = self.cfg
        features = batch.features
        student_attention_layers = [s for s, _ in self.layers] if self.distils and cfg.w_ira > 0 else []
        out = self.student.forward_tokens(features, attention_layers=student_attention_layers)
        z = out.pooled
        task = self.task_loss(z, batch)
        if not self.distils:  # student-only baseline (alpha 0)
            return task, {"loss": task.detach(), "task": task.detach()}

        teacher_mask = batch.teacher_features["attention_mask"]
        mined = batch.alignments["mined"]
        pairs_s, pairs_t = mined.student_groups, mined.teacher_groups
        content = batch.alignments["content"].teacher_groups[:, 0] > 0
        teacher_attn = dict(zip(self.teacher_attention_layers, batch.teacher_attentions, strict=True))
        importance = emo_importance(teacher_attn[max(teacher_attn)], teacher_mask, content)

        metrics = {}
        ira = z.new_zeros(())
        if cfg.w_ira > 0:
            ira, metrics["ira_texts"], metrics["top_m"] = self.ira(out.attentions, teacher_attn, pairs_s, pairs_t,
                                                                   mined.group_mask, content, importance)
        ot = z.new_zeros(())
        if cfg.w_ot > 0:
            ot, metrics["ot_error"], metrics["ot_iters"], metrics["ot_unconverged"] = self.ot(
                out.tokens, batch.teacher_hidden[0], features["attention_mask"], teacher_mask, pairs_s, pairs_t, importance)
        loss = (1 - cfg.alpha) * task + cfg.alpha * (cfg.w_ira * ira + cfg.w_ot * ot)
        return loss, {"loss": loss.detach(), "task": task.detach(), "ira": ira.detach(), "ot": ot.detach(), **metrics}

    def ira(self, student_attentions, teacher_attn, pairs_s, pairs_t, group_mask, content, importance):
        """L_ira = mean over IRA layers and over texts with m ≥ 3 (CKA defined) of 1 − CKA; ira_texts: their share in the last layer."""
        pairs_s, pairs_t = pairs_s.float(), pairs_t.float()
        valid = group_mask & (pairs_s.sum(-1) > 0) & (pairs_t.sum(-1) > 0)
        eligible = valid & ((pairs_t @ content.float().unsqueeze(-1)).squeeze(-1) > 0)
        scores = (pairs_t @ importance.unsqueeze(-1)).squeeze(-1)
        top = emo_top_m(scores, eligible, valid.sum(1), self.cfg.top_m_divisor)
        terms, texts = [], None
        for (_, t_layer), s_attn in zip(self.layers, student_attentions, strict=True):
            # [B, G, G]: attention among the mapped tokens, pair g's token attending to pair h's.
            # Invalid pairs have all-zero one-hot rows, so their rows and columns are zero.
            s_rel = pairs_s @ s_attn.float().mean(1) @ pairs_s.transpose(1, 2)
            t_rel = pairs_t @ teacher_attn[t_layer].float().mean(1) @ pairs_t.transpose(1, 2)
            cka, defined = linear_cka(s_rel, t_rel, top)
            texts = defined.float()
            terms.append(((1 - cka) * texts).sum() / texts.sum().clamp(min=1))
        return torch.stack(terms).mean(), texts.mean().detach(), top.sum(1).float().mean().detach()

    def ot(self, student_states, teacher_states, student_mask, teacher_mask, pairs_s, pairs_t, importance):
        """L_ot = mean over texts of ⟨plan, C⟩ (docs/methods.md#emo); plus the Sinkhorn report."""
        cfg = self.cfg
        dtype = self.projection.weight.dtype
        if cfg.projection == "teacher_to_student":
            student_side, teacher_side = student_states, self.projection(teacher_states.to(dtype))
        else:
            student_side, teacher_side = self.projection(student_states.to(dtype)), teacher_states
        with torch.autocast(student_states.device.type, enabled=False):
            cost = emo_ot_cost(student_side, teacher_side, teacher_mask, cfg.ot_cost)
            a_s, a_t = emo_masses(importance, teacher_mask, pairs_s, pairs_t, student_mask)
            plan, error, iterations = sinkhorn(cost, a_s, a_t, cfg.ot_epsilon, cfg.ot_max_iter, cfg.ot_tol)
            ot = (plan * cost).sum((1, 2)).mean()
        unconverged = error > cfg.ot_tol
        if bool(unconverged.any()):
            warnings.warn(f"EMO Sinkhorn: {int(unconverged.sum())} of {len(error)} texts above --ot_tol {cfg.ot_tol:g} after "
                          f"{iterations} iterations (worst row-marginal error {float(error.max()):.2e}); raise --ot_max_iter "
                          "or --ot_epsilon. The ot_unconverged column of the log counts them.", stacklevel=2)
        return ot, error.max(), torch.tensor(float(iterations)), unconverged.float().mean()
