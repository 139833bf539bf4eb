"""Pure loss functions on tensors. Shapes in the docstrings; known-value tests in tests/test_losses.py.

Every method composes these; nothing here knows about models, batches or configs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def info_nce(
    anchors: torch.Tensor,
    positives: torch.Tensor,
    temperature: float,
    negatives: torch.Tensor | None = None,
    anchor_ids: torch.Tensor | None = None,
    positive_ids: torch.Tensor | None = None,
    negative_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric InfoNCE with in-batch negatives (and optional hard negatives).

    anchors, positives: [B, D]; negatives: [K, D] extra candidates for the anchor→positive
    direction. Vectors are L2-normalised here. ``*_ids`` ([B], [B], [K]) identify texts: a candidate
    whose text equals the row's positive (or, in the reverse direction, the row's anchor) is a
    duplicate, not a negative, and is masked out. Returns a scalar:
    ½·[CE(n(a)·n([p; neg])ᵀ/τ, diag) + CE(n(p)·n(a)ᵀ/τ, diag)].
    """
    a = F.normalize(anchors, dim=-1)
    p = F.normalize(positives, dim=-1)
    candidates = p if negatives is None or negatives.shape[0] == 0 else torch.cat([p, F.normalize(negatives, dim=-1)])
    target = torch.arange(a.shape[0], device=a.device)
    forward_logits = a @ candidates.T / temperature
    backward_logits = p @ a.T / temperature
    if positive_ids is not None:
        cand_ids = positive_ids if candidates.shape[0] == a.shape[0] else torch.cat([positive_ids, negative_ids])
        forward_logits = mask_duplicates(forward_logits, positive_ids, cand_ids)
    if anchor_ids is not None:
        backward_logits = mask_duplicates(backward_logits, anchor_ids, anchor_ids)
    return 0.5 * (F.cross_entropy(forward_logits, target) + F.cross_entropy(backward_logits, target))


def mask_duplicates(logits: torch.Tensor, row_target_ids: torch.Tensor, column_ids: torch.Tensor) -> torch.Tensor:
    """Set logits[i, j] to -inf where column j holds the same text as row i's target, j ≠ i.

    logits: [B, C]; row_target_ids: [B]; column_ids: [C]. The diagonal (the target) is kept.
    """
    same = row_target_ids.unsqueeze(1) == column_ids.unsqueeze(0)
    same[torch.arange(logits.shape[0]), torch.arange(logits.shape[0])] = False
    return logits.masked_fill(same, float("-inf"))


def normalized_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """mean_b ‖n(student_b) − n(teacher_b)‖²: the squared distance per vector, averaged over the batch.

    student, teacher: [B, D] (same D: project the student first). Equals 2·(1 − mean cos) whatever
    D is, so its weight against the task loss means the same for a 384-d and a 1024-d teacher.
    """
    diff = F.normalize(student.float(), dim=-1) - F.normalize(teacher.float(), dim=-1)
    return diff.pow(2).sum(dim=-1).mean()


def normalized_mse_elementwise(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """The seed's KD term: MSE(n(student), n(teacher)) averaged over all B·D entries.

    student, teacher: [B, D]. Equals normalized_mse / D = 2·(1 − mean cos)/D: at the seed's weights
    (w_task = w_kd = 0.5, τ = 0.05) its gradient is ~1/1000 of InfoNCE's, so the teacher barely
    counts; kept as ``--kd_loss mse_elementwise`` to reproduce the seed.
    """
    return F.mse_loss(F.normalize(student.float(), dim=-1), F.normalize(teacher.float(), dim=-1))


def cosine_distance(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """mean_b (1 − cos(student_b, teacher_b)); student, teacher: [B, D]."""
    return (1.0 - F.cosine_similarity(student.float(), teacher.float(), dim=-1)).mean()


def cosine_matrix(x: torch.Tensor) -> torch.Tensor:
    """n(x)·n(x)ᵀ: [B, D] → [B, B], in fp32 even under autocast.

    The Stella terms compare similarities to margins of 0.015, finer than bf16 resolves near 1.
    """
    with torch.autocast(x.device.type, enabled=False):
        x = F.normalize(x.float(), dim=-1)
        return x @ x.T


def similarity_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Stella's L_sim: MSE(n(S)·n(S)ᵀ, n(T)·n(T)ᵀ), averaged over all B² entries.

    student: [B, D_S], teacher: [B, D_T]. The widths may differ (both matrices are B × B), so a
    Matryoshka prefix of the student is compared with the full-width teacher.
    """
    return F.mse_loss(cosine_matrix(student), cosine_matrix(teacher))


def relative_similarity_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    margin: float = 0.015,
    max_pairs: int = 0,
    chunk_elements: int = 1 << 24,
) -> torch.Tensor:
    """Stella's L_resim: the student must order text pairs as the teacher does, by a margin.

    student: [B, D_S], teacher: [B, D_T] (normalised here). Text pairs p = (i, j), i < j, have
    similarities s_p = n(s_i)·n(s_j) and t_p = n(t_i)·n(t_j); there are P = B(B−1)/2. Returns
    the scalar mean, over ordered pairs of text pairs (p, q) with t_p > t_q, of
    max(0, s_q − s_p + margin); 0 when there is no such (p, q) (B < 3, or all t_p equal).
    Without ties this is the authors' code exactly (each unordered {p, q} once, in the teacher's
    order); ties carry no order, so they are left out instead of ordered by index.

    The (p, q) grid has P² = O(B⁴) cells (6.6·10⁷ for 128 distinct texts, 1.1·10⁹ for 256,
    5.4·10⁹ for 384), so:
    - it is evaluated in row blocks of at most ``chunk_elements`` cells, and the gradient,
      which only counts active hinges per pair, is accumulated in the same pass: memory is
      O(P + chunk_elements) instead of the several P² tensors autograd would keep;
    - with ``max_pairs`` > 0 and P > max_pairs, a uniform random subset of max_pairs text pairs
      (a fresh draw from the global RNG every call) stands in for all of them, bounding the time.
    The result equals the exact definition whenever P ≤ max_pairs (or max_pairs is 0).
    """
    s_matrix, t_matrix = cosine_matrix(student), cosine_matrix(teacher.detach())
    i, j = torch.triu_indices(s_matrix.shape[0], s_matrix.shape[0], offset=1, device=s_matrix.device)
    s_pairs, t_pairs = s_matrix[i, j], t_matrix[i, j]
    if 0 < max_pairs < s_pairs.numel():
        keep = torch.randperm(s_pairs.numel(), device=s_pairs.device)[:max_pairs]
        s_pairs, t_pairs = s_pairs[keep], t_pairs[keep]
    rows = max(1, chunk_elements // max(1, s_pairs.numel()))
    return _PairRankingHinge.apply(s_pairs, t_pairs, margin, rows)


class _PairRankingHinge(torch.autograd.Function):
    """mean over {(p, q): t_p > t_q} of relu(s_q − s_p + margin), blockwise, with its exact gradient.

    s, t: [P]. d/ds_q gains 1 per active (p, q) hinge and d/ds_p loses 1, divided by the count of
    (p, q) with t_p > t_q; only this [P] vector is kept for backward.
    """

    @staticmethod
    def forward(ctx, s: torch.Tensor, t: torch.Tensor, margin: float, rows: int) -> torch.Tensor:
        total = torch.zeros((), dtype=torch.float64, device=s.device)
        count = torch.zeros((), dtype=torch.int64, device=s.device)
        slope = torch.zeros_like(s)
        for start in range(0, s.numel(), rows):
            block = slice(start, start + rows)
            hinge = s.unsqueeze(0) - s[block].unsqueeze(1) + margin  # [r, P]: s_q − s_p + margin
            ordered = t[block].unsqueeze(1) > t.unsqueeze(0)  # t_p > t_q
            active = ordered & (hinge > 0)
            total += torch.where(active, hinge, 0.0).sum(dtype=torch.float64)
            count += ordered.sum()
            active = active.to(s.dtype)
            slope += active.sum(0)
            slope[block] -= active.sum(1)
        denominator = count.clamp(min=1)
        ctx.save_for_backward(slope / denominator)
        return (total / denominator).to(s.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (slope,) = ctx.saved_tensors
        return grad * slope, None, None, None


def group_mean(groups: torch.Tensor, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Average token states within aligned groups (the collator's packed alignments).

    groups: [B, G, L] 0/1 membership of each padded position in each group; states: [B, L, D].
    Returns (means [B, G, D], nonempty [B, G] bool); an empty group's mean is 0 and it is not
    nonempty. Two batched matmuls, no Python loop over texts or groups.
    """
    groups = groups.to(states.dtype)
    count = groups.sum(-1, keepdim=True)
    return (groups @ states) / count.clamp(min=1), count[..., 0] > 0

# ----------------------------------------------------------------------------- DSKD (talas/methods/dskd.py)


def std_scaled(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Divide each sequence's states by their standard deviation over its real tokens (all features).

    states: [B, L, D]; mask: [B, L] 1 = real token (either padding side). Returns [B, L, D]. DSKD
    scales the teacher's embeddings and states this way so a fresh query projection meets keys and
    values of unit spread whatever the teacher's scale (Qwen3's raw embeddings are ~0.03); per
    sentence, so padding and batch mates never change a sentence's result.
    """
    m = mask.to(states.dtype).unsqueeze(-1)
    count = m.sum(dim=(1, 2), keepdim=True) * states.shape[-1]
    mean = (states * m).sum(dim=(1, 2), keepdim=True) / count.clamp(min=1)
    var = ((states - mean) * m).pow(2).sum(dim=(1, 2), keepdim=True) / (count - 1).clamp(min=1)
    return states / var.sqrt().clamp(min=1e-6)


def cross_attend(scores: torch.Tensor, key_mask: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Per-sentence attention: softmax of each query row over that sentence's real keys, times values.

    scores: [B, Lq, Lk] (query·key logits of ONE sentence per b, never across sentences); key_mask:
    [B, Lk] 1 = real key, left or right padding; values: [B, Lk, D]. Returns [B, Lq, D], fp32.
    Padded keys get exactly zero weight; a padded query row still gets a finite mix of real keys
    (callers pool over real queries only).
    """
    with torch.autocast(scores.device.type, enabled=False):
        scores = scores.float().masked_fill(~key_mask.bool().unsqueeze(1), torch.finfo(torch.float32).min)
        return torch.softmax(scores, dim=-1) @ values.float()


def similarity_kl(target: torch.Tensor, other: torch.Tensor, scale: float) -> torch.Tensor:
    """KL(p_target ‖ p_other) between in-batch similarity distributions, averaged over rows.

    target: [B, D1], other: [B, D2] (one row per distinct text; the widths may differ). Row i's
    distribution is softmax_j(scale · cos(x_i, x_j)) over the other texts j ≠ i (a text's similarity
    to itself is 1 in every space and says nothing). DSKD uses scale = 1/(τ·T): InfoNCE's logits,
    softened by the KD temperature T as the LM version softens vocabulary logits. Gradients flow into
    both arguments; detach the one that is a fixed target. Fewer than 2 rows: 0 (still in the graph).
    """
    b = target.shape[0]
    if b < 2:
        return (other.sum() + target.sum()) * 0.0
    # Dropping the diagonal (rather than masking it with -inf) keeps every logit finite, so neither
    # the loss nor its gradient can meet 0·inf.
    off_diagonal = ~torch.eye(b, dtype=torch.bool, device=target.device)
    log_p = torch.log_softmax((cosine_matrix(target) * scale)[off_diagonal].view(b, b - 1), dim=-1)
    log_q = torch.log_softmax((cosine_matrix(other) * scale)[off_diagonal].view(b, b - 1), dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1).mean()


# ----------------------------------------------------------------------------- CDM (talas/methods/cdm.py)


def cdm_entropy_weights(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """CDM's per-token weights w = floor(3 + 3·sigmoid(4·Ĥ − 2)) ∈ {3, 4, 5}; 0 on padding.

    logits: [B, L, V] (an MLM head's or pseudo-logits); mask: [B, L] 1 = real token. Ĥ is each
    token's entropy min–max normalised over the real tokens of its own sequence (a sequence whose
    tokens all have the same entropy gets Ĥ = 0, weight 3). Used once per text for the DTW costs.
    """
    logp = torch.log_softmax(logits.float(), dim=-1)
    entropy = -(logp.exp() * logp).sum(-1)
    real = mask.bool()
    low = entropy.masked_fill(~real, float("inf")).amin(-1, keepdim=True)
    high = entropy.masked_fill(~real, float("-inf")).amax(-1, keepdim=True)
    norm = ((entropy - low) / (high - low).clamp(min=1e-12)).clamp(0.0, 1.0)
    weights = torch.floor(3.0 + 3.0 * torch.sigmoid(4.0 * norm - 2.0))
    return weights.masked_fill(~real, 0.0)


GROUP_LOSSES = ("mse", "mse_elementwise", "relative")


def cdm_group_mse(student: torch.Tensor, teacher: torch.Tensor, valid: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """L_cdm over the valid groups of a batch; student, teacher: [B, G, D] group means (one side already
    projected into the other's width); valid: [B, G] bool (groups non-empty on both sides).

    "mse": mean over groups of ‖n(teacher) − n(student)‖² (= 2(1 − cos), whatever D is, as
    normalized_mse); "mse_elementwise": its mean over the D entries (1/D of it); "relative": the
    states as they are, Σ‖teacher − student‖² / Σ‖teacher‖² (the denominator a constant). Normalising
    each group hides the text's mean state; without it the squared distances of a text's groups sum to
    its groups' spread plus (number of groups)·‖mean difference‖², and with one-to-one groups the mean
    state is the mean-pooled sentence vector. No valid group → 0 (still in the graph).
    """
    weight = valid.to(student.dtype)
    if kind == "relative":
        squared = (teacher - student).pow(2).sum(-1)
        scale = (teacher.detach().pow(2).sum(-1) * weight).sum().clamp(min=1e-12)
        return (squared * weight).sum() / scale
    diff = F.normalize(teacher, dim=-1) - F.normalize(student, dim=-1)
    per_group = diff.pow(2).mean(-1) if kind == "mse_elementwise" else diff.pow(2).sum(-1)
    return (per_group * weight).sum() / weight.sum().clamp(min=1.0)


def center_groups(states: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """states minus their mean over the valid groups of the whole batch (a shared direction removed).

    states: [B, G, D]; valid: [B, G] bool. Invalid groups are returned centred too (they are masked
    later). Last-layer token states share a large common component; matched after normalisation
    as they are, a student can lower the loss by aligning every token with it (CDM's measured failure).
    """
    weight = valid.to(states.dtype).unsqueeze(-1)
    mean = (states * weight).sum((0, 1)) / weight.sum().clamp(min=1.0)
    return states - mean


# ----------------------------------------------------------------------------- EMO (talas/methods/emo.py)


def linear_cka(x: torch.Tensor, y: torch.Tensor, rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Linear CKA between two sets of row vectors, one pair of sets per batch element; fp32.

    x: [B, n, p], y: [B, n, q] (row i of x and row i of y describe the same item; the widths may
    differ); rows: [B, n] bool, the real rows (None: all). Padded rows must not matter, so they are
    left out of the column means and zeroed after centring; padded COLUMNS must be zero in every
    row (then centring keeps them zero). Returns (cka [B], defined [B] bool):

        CKA = ‖X̃ᵀỸ‖²_F / (‖X̃ᵀX̃‖_F · ‖ỸᵀỸ‖_F),   X̃, Ỹ centred over the real rows,

    the HSIC ratio of Kornblith et al. (2019) with linear kernels: 1 when Y = c·X·Q (isotropic
    scale c, orthogonal Q), in [0, 1] always. (METHODS.md writes the square root of this, which
    shares those properties; "linear CKA" names this one.) ``defined`` is False with fewer than 3
    real rows (two centred rows are ±d: rank one, and CKA is 1 whatever the rows are) or where a
    side has no spread over them; cka is 0 there, without NaN.
    """
    with torch.autocast(x.device.type, enabled=False):
        x, y = x.float(), y.float()
        keep = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if rows is None else rows.bool()
        weight = keep.to(x.dtype).unsqueeze(-1)
        count = weight.sum(1, keepdim=True).clamp(min=1)
        x = (x - (x * weight).sum(1, keepdim=True) / count) * weight
        y = (y - (y * weight).sum(1, keepdim=True) / count) * weight
        cross = (x.transpose(1, 2) @ y).pow(2).sum((1, 2))
        self_x = torch.linalg.matrix_norm(x.transpose(1, 2) @ x)
        self_y = torch.linalg.matrix_norm(y.transpose(1, 2) @ y)
        # Relative threshold: a side whose centred rows are rounding noise has no spread.
        tiny = torch.finfo(x.dtype).eps
        defined = (self_x > tiny * x.pow(2).sum((1, 2)).clamp(min=tiny)) & (self_y > tiny * y.pow(2).sum((1, 2)).clamp(min=tiny))
        defined &= keep.sum(1) >= 3
        denominator = torch.where(defined, self_x * self_y, torch.ones_like(self_x))
        return torch.where(defined, cross / denominator, torch.zeros_like(cross)), defined


@torch.no_grad()
def sinkhorn(cost: torch.Tensor, a: torch.Tensor, b: torch.Tensor, epsilon: float, max_iter: int,
             tol: float) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Entropic optimal transport plans for a batch of problems (log-domain Sinkhorn), in fp32.

    cost: [B, n, m]; a: [B, n], b: [B, m] masses, each row summing to 1, 0 on padding (padded rows
    and columns get exactly zero transport). Minimises ⟨P, C⟩ − ε·H(P) subject to P·1 = a, Pᵀ·1 = b.
    Each iteration fits the rows, then the columns (so the column sums are exact); it stops once every
    problem's row error Σ_i |P_i· − a_i| is ≤ ``tol``, else after ``max_iter`` iterations.
    Returns (plan [B, n, m], error [B], iterations). The plan carries no gradient: by the envelope
    theorem d OT_ε/dC is the optimal plan, so ⟨plan, C⟩ with a differentiable C is the loss, and the
    iterations keep no autograd memory. Log-domain potentials cannot underflow for small ε; fp32 even
    under bf16 autocast (bf16 cannot resolve masses of 1/n next to 1).
    """
    with torch.autocast(cost.device.type, enabled=False):
        scaled = -cost.detach().float() / epsilon
        log_a = a.float().log()  # log 0 = -inf: a padded row never receives mass
        log_b = b.float().log()
        f = torch.zeros_like(log_a)
        g = torch.zeros_like(log_b)
        error = torch.full(log_a.shape[:1], float("inf"), device=cost.device)
        iterations = 0
        while iterations < max_iter:
            new_f = log_a - torch.logsumexp(scaled + g.unsqueeze(1), dim=2)
            if iterations:
                # Row sums of the current plan (exact columns) are a·exp(f − new_f): the error comes free.
                ratio = torch.where(a > 0, (f - new_f).exp() - 1.0, torch.zeros_like(f))
                error = (a.float() * ratio.abs()).sum(1)
                if bool((error <= tol).all()):
                    break
            f = new_f
            g = log_b - torch.logsumexp(scaled + f.unsqueeze(2), dim=1)
            iterations += 1
        plan = (f.unsqueeze(2) + scaled + g.unsqueeze(1)).exp()
        if iterations == max_iter:  # the loop ran out: measure the final plan directly
            error = (plan.sum(2) - a.float()).abs().sum(1)
        return plan, error, iterations


def emo_ot_cost(student: torch.Tensor, projected_teacher: torch.Tensor, teacher_mask: torch.Tensor, kind: str) -> torch.Tensor:
    """EMO's transport cost [B, Ls, Lt] between student token states and projected teacher ones, in fp32.

    "softmax" (published): 1 − softmax over the text's teacher tokens of s·P(h)/√d. A softmax ignores
    what all of its logits share, so adding one vector to every projected teacher token of a text leaves
    this cost unchanged: it cannot see the text's mean teacher state, which for a mean-pooling teacher is
    its sentence vector. "cosine": 1 − cos(s, P(h)), which sees it.
    """
    student, projected = student.float(), projected_teacher.float()
    if kind == "cosine":
        cost = 1.0 - F.normalize(student, dim=-1) @ F.normalize(projected, dim=-1).transpose(1, 2)
        return cost.masked_fill(~teacher_mask.bool().unsqueeze(1), 2.0)  # padded columns get no mass anyway
    logits = student @ projected.transpose(1, 2) / math.sqrt(student.shape[-1])
    logits = logits.masked_fill(~teacher_mask.bool().unsqueeze(1), float("-inf"))
    return 1.0 - torch.softmax(logits, dim=-1)  # padded student rows are finite too


def emo_importance(attention: torch.Tensor, mask: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """EMO's token importance: the attention each token receives, summed over the real queries.

    attention: [B, H, L, L] (rows: queries) of the teacher's last layer; mask: [B, L] 1 = real token;
    content: [B, L] bool, tokens that may be important (not special, stop word, digit or punctuation).
    Returns [B, L] head-averaged column sums; every non-content token gets its row's smallest content
    importance (0 if the row has no content token), so attention sinks ([CLS], EOS, "the", ".")
    cannot take the mass. Padding gets 0.
    """
    real = mask.bool()
    received = (attention.float().mean(1) * real.unsqueeze(-1).float()).sum(1)
    content = content.bool() & real
    floor = received.masked_fill(~content, float("inf")).amin(1, keepdim=True)
    floor = torch.where(torch.isinf(floor), torch.zeros_like(floor), floor)
    out = torch.where(content, received, floor.expand_as(received))
    return out.masked_fill(~real, 0.0)


def emo_masses(importance: torch.Tensor, teacher_mask: torch.Tensor, pairs_student: torch.Tensor,
               pairs_teacher: torch.Tensor, student_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """OTIS masses: teacher a^T = softmax(importance) over its real tokens; student a^S = the mass of
    the teacher token each student token is MinED-paired with, the smallest teacher mass if unpaired,
    renormalised over the real student tokens.

    importance: [B, Lt]; teacher_mask: [B, Lt], student_mask: [B, Ls] 1 = real; pairs_student
    [B, G, Ls], pairs_teacher [B, G, Lt]: one-hot rows of the G one-to-one pairs (all-zero rows for
    no pair). Returns (a^S [B, Ls], a^T [B, Lt]), each row summing to 1, 0 on padding.
    """
    real_t, real_s = teacher_mask.bool(), student_mask.bool()
    a_t = torch.softmax(importance.float().masked_fill(~real_t, float("-inf")), dim=-1)
    carried = (pairs_student.float().transpose(1, 2) @ (pairs_teacher.float() @ a_t.unsqueeze(-1))).squeeze(-1)
    paired = pairs_student.sum(1) > 0
    floor = a_t.masked_fill(~real_t, float("inf")).amin(1, keepdim=True)
    a_s = torch.where(paired, carried, floor.expand_as(carried)).masked_fill(~real_s, 0.0)
    return a_s / a_s.sum(1, keepdim=True), a_t


def emo_top_m(scores: torch.Tensor, eligible: torch.Tensor, n_map: torch.Tensor, divisor: int) -> torch.Tensor:
    """EMO's top-m: the m = ⌊n_map / divisor⌋ eligible pairs of highest score (fewer if fewer are eligible).

    scores: [B, G] importance of each pair's teacher token; eligible: [B, G] bool; n_map: [B] number
    of mapped pairs. Ties go to the earlier pair. Returns [B, G] bool.
    """
    order = torch.sort(scores.masked_fill(~eligible, float("-inf")), dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    return eligible & (rank < (n_map // divisor).unsqueeze(1))
