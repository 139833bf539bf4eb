"""CDM's pure loss terms (talas/losses.py, CDM section): known values on tiny tensors.

Run: pytest -q tests/test_cdm.py
"""

from __future__ import annotations

import math

import torch

from talas.losses import cdm_entropy_weights, cdm_group_mse


def test_entropy_weights_known_values_with_left_padding():
    # Vocab of 2: [0, 0] is uniform (max entropy, Ĥ = 1 → floor(3 + 3·σ(2)) = 5);
    # [2, 0]: H = 0.365, Ĥ = 0.365 / ln 2 = 0.527 → floor(3 + 3·σ(0.107)) = 4;
    # [30, 0]: H ≈ 0, Ĥ = 0 → floor(3 + 3·σ(−2)) = 3; the left pad gets 0 and is not in the min–max.
    logits = torch.tensor([[[-50.0, 50.0], [0.0, 0.0], [2.0, 0.0], [30.0, 0.0]]])
    mask = torch.tensor([[0, 1, 1, 1]])
    assert cdm_entropy_weights(logits, mask).tolist() == [[0.0, 5.0, 4.0, 3.0]]


def test_entropy_weights_hand_computed_boundary():
    p = torch.tensor([0.881, 0.119])
    h = -(p * p.log()).sum().item()
    assert math.floor(3 + 3 / (1 + math.exp(-(4 * h / math.log(2) - 2)))) == 4


def test_entropy_weights_constant_sequence_and_right_padding():
    logits = torch.zeros(2, 3, 4)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    assert cdm_entropy_weights(logits, mask).tolist() == [[3.0, 3.0, 0.0], [3.0, 3.0, 3.0]]


def test_group_mse_known_values_ignores_invalid_groups():
    student = torch.tensor([[[1.0, 0.0], [2.0, 0.0], [1.0, 0.0]]])
    teacher = torch.tensor([[[0.0, 1.0], [3.0, 0.0], [-1.0, 0.0]]])
    valid = torch.tensor([[True, True, False]])
    # group 0: n() differ by (−1, 1) → MSE 1; group 1: same direction → 0; group 2 (MSE 2) is masked.
    assert torch.isclose(cdm_group_mse(student, teacher, valid), torch.tensor(0.5))


def test_group_mse_gradient_reaches_both_sides_and_no_group_is_zero():
    student = torch.randn(2, 3, 4, requires_grad=True)
    teacher = torch.randn(2, 3, 4, requires_grad=True)
    cdm_group_mse(student, teacher, torch.ones(2, 3, dtype=torch.bool)).backward()
    assert student.grad.abs().sum() > 0 and teacher.grad.abs().sum() > 0
    zero = cdm_group_mse(student, teacher, torch.zeros(2, 3, dtype=torch.bool))
    assert zero.item() == 0.0 and zero.requires_grad
