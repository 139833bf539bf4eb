"""Known-value tests for the loss functions and pooling, on tiny hand-made tensors."""

import math

import pytest
import torch

from talas.losses.contrastive import info_nce, mask_duplicates
from talas.losses.tokens import group_mean
from talas.losses.vectors import cosine_distance, normalized_mse, normalized_mse_elementwise
from talas.models.encoder import pool


def ce(logits_row, target):
    return -logits_row[target] + math.log(sum(math.exp(v) for v in logits_row))


def test_info_nce_matches_hand_computed_value():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[1.0, 1.0], [0.0, 2.0]])  # normalised: [.7071, .7071], [0, 1]
    tau = 0.5
    s = 1 / math.sqrt(2)
    # forward: a_i · p_j / tau
    fwd = [[s / tau, 0.0], [s / tau, 1 / tau]]
    # backward: p_i · a_j / tau
    bwd = [[s / tau, s / tau], [0.0, 1 / tau]]
    expected = 0.5 * ((ce(fwd[0], 0) + ce(fwd[1], 1)) / 2 + (ce(bwd[0], 0) + ce(bwd[1], 1)) / 2)
    assert info_nce(a, p, tau).item() == pytest.approx(expected, rel=1e-6)


def test_info_nce_is_symmetric_in_its_views_and_scale_invariant():
    torch.manual_seed(0)
    a, p = torch.randn(5, 8), torch.randn(5, 8)
    assert info_nce(a, p, 0.1).item() == pytest.approx(info_nce(p, a, 0.1).item(), rel=1e-6)
    assert info_nce(3 * a, p, 0.1).item() == pytest.approx(info_nce(a, p, 0.1).item(), rel=1e-6)


def test_info_nce_hard_negatives_add_candidates():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    neg = torch.tensor([[1.0, 0.0]])  # identical to a_0's positive direction: makes row 0 harder
    tau = 1.0
    fwd0 = [1.0, 0.0, 1.0]
    fwd1 = [0.0, 1.0, 0.0]
    bwd = [[1.0, 0.0], [0.0, 1.0]]
    expected = 0.5 * ((ce(fwd0, 0) + ce(fwd1, 1)) / 2 + (ce(bwd[0], 0) + ce(bwd[1], 1)) / 2)
    got = info_nce(a, p, tau, negatives=neg)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_duplicate_texts_are_not_negatives():
    # Rows 0 and 1 hold the same text (id 7): without masking row 1's copy is a "negative" of row 0.
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    p = a.clone()
    ids = torch.tensor([7, 7, 3])
    masked = info_nce(a, p, 1.0, anchor_ids=ids, positive_ids=ids)
    # With the duplicate masked, rows 0 and 1 each see only themselves and row 2.
    row = ce([1.0, 0.0], 0)
    row2 = ce([0.0, 0.0, 1.0], 2)
    expected = 0.5 * ((row + row + row2) / 3 * 2)
    assert masked.item() == pytest.approx(expected, rel=1e-6)
    assert info_nce(a, p, 1.0).item() > masked.item()


def test_mask_duplicates_keeps_the_diagonal():
    logits = torch.zeros(2, 3)
    out = mask_duplicates(logits, torch.tensor([1, 1]), torch.tensor([1, 1, 2]))
    assert out[0, 0] == 0 and out[1, 1] == 0
    assert out[0, 1] == float("-inf") and out[1, 0] == float("-inf")
    assert out[0, 2] == 0


def test_normalized_mse_known_value():
    s = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    t = torch.tensor([[0.0, 5.0], [3.0, 3.0]])
    # row 0: n(s) = [1, 0], n(t) = [0, 1], squared distance 2; row 1: identical directions, 0
    assert normalized_mse(s, t).item() == pytest.approx(1.0)
    assert normalized_mse_elementwise(s, t).item() == pytest.approx(0.5)  # the seed's: / D = 2 entries per row
    assert normalized_mse(s, 3 * s).item() == pytest.approx(0.0, abs=1e-7)


def test_kd_scale_does_not_depend_on_width():
    # The same angles embedded in 4 and in 1024 dimensions: the default term is 2(1 − cos) in both,
    # the seed's element-wise mean shrinks with the width.
    torch.manual_seed(0)
    small_s, small_t = torch.randn(8, 4), torch.randn(8, 4)
    rotation = torch.linalg.qr(torch.randn(1024, 1024))[0][:, :4]
    big_s, big_t = small_s @ rotation.T, small_t @ rotation.T
    expected = 2 * (1 - torch.nn.functional.cosine_similarity(small_s, small_t)).mean()
    assert normalized_mse(small_s, small_t).item() == pytest.approx(expected.item(), rel=1e-5)
    assert normalized_mse(big_s, big_t).item() == pytest.approx(expected.item(), rel=1e-4)
    assert normalized_mse_elementwise(big_s, big_t).item() == pytest.approx(expected.item() / 1024, rel=1e-4)


def test_cosine_distance_known_value():
    s = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    t = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    assert cosine_distance(s, t).item() == pytest.approx(0.5)


def test_losses_pass_gradients():
    s = torch.randn(4, 6, requires_grad=True)
    t = torch.randn(4, 6)
    (info_nce(s, t, 0.05) + normalized_mse(s, t) + cosine_distance(s, t)).backward()
    assert s.grad is not None and torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0


HIDDEN = torch.arange(2 * 4 * 2, dtype=torch.float32).reshape(2, 4, 2)


@pytest.mark.parametrize(
    "mask,method,expected",
    [
        # right padding: sequence 0 has 2 real tokens, sequence 1 has 4
        ([[1, 1, 0, 0], [1, 1, 1, 1]], "cls", [[0, 1], [8, 9]]),
        ([[1, 1, 0, 0], [1, 1, 1, 1]], "last_token", [[2, 3], [14, 15]]),
        ([[1, 1, 0, 0], [1, 1, 1, 1]], "mean", [[1, 2], [11, 12]]),
        # left padding: sequence 0's real tokens are positions 2 and 3
        ([[0, 0, 1, 1], [1, 1, 1, 1]], "cls", [[4, 5], [8, 9]]),
        ([[0, 0, 1, 1], [1, 1, 1, 1]], "last_token", [[6, 7], [14, 15]]),
        ([[0, 0, 1, 1], [1, 1, 1, 1]], "mean", [[5, 6], [11, 12]]),
    ],
)
def test_pooling_left_and_right_padding(mask, method, expected):
    out = pool(HIDDEN, torch.tensor(mask), method)
    assert out.tolist() == expected


def test_unknown_pooling_is_a_clear_error():
    from talas.errors import ConfigError

    with pytest.raises(ConfigError, match="cls, mean, last_token"):
        pool(HIDDEN, torch.ones(2, 4), "max")


def test_group_mean_known_values_with_padding_and_empty_groups():
    states = torch.tensor([[[1.0, 0.0], [3.0, 2.0], [100.0, 100.0]]])  # position 2 is padding
    groups = torch.tensor([[[1, 1, 0], [0, 1, 0], [0, 0, 0]]], dtype=torch.float32)
    means, nonempty = group_mean(groups, states)
    assert torch.equal(means, torch.tensor([[[2.0, 1.0], [3.0, 2.0], [0.0, 0.0]]]))
    assert nonempty.tolist() == [[True, True, False]]
