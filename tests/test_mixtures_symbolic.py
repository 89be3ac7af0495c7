"""The MaxRL identity and mixture unbiasedness, proved exactly (sympy, fractions)."""
from __future__ import annotations

from fractions import Fraction as F

import pytest
import sympy as sp
import torch

import maxpo
from maxpo.theory import mixtures_symbolic as ms


@pytest.mark.parametrize("b", range(2, 13))
def test_maxrl_identity_symbolic_in_c(b):
    assert ms.identity_at(b).holds


def test_identity_residual_detects_a_wrong_mixture():
    c = sp.Symbol("c")
    b = 6
    wrong = sum(ms.maxpo_binary_advantages(b, k, c)[0] / (k + 1) for k in range(1, b))
    assert any(sp.simplify(wrong.subs(c, v) - sp.Rational(b - v, b * v)) != 0 for v in range(1, b))


@pytest.mark.parametrize("b", [3, 5, 8])
def test_binary_polynomials_match_the_estimator(b):
    c = sp.Symbol("c")
    for k in range(1, b):
        pos, neg = ms.maxpo_binary_advantages(b, k, c)
        for v in range(1, b):
            a = maxpo.advantages(torch.tensor([1.0] * v + [0.0] * (b - v), dtype=torch.float64), k)
            assert float(a[0]) == pytest.approx(float(pos.subs(c, v)), abs=1e-13)
            assert float(a[-1]) == pytest.approx(float(neg.subs(c, v)), abs=1e-13)


def test_general_proof_and_centring():
    proof = ms.general_proof()
    assert proof.holds, proof
    assert ms.centring_transfers() == 0


def test_mixture_unbiased_and_centred_real_rewards():
    probs, rewards = ["1/2", "1/3", "1/6"], ["-1/2", "1/3", 2]
    assert ms.mixture_unbiased_by_enumeration(probs, rewards, 4, {1: "1/2", 2: -1, 3: "5/2"}) == \
        {"centred": True, "unbiased": True}
    assert ms.mixture_unbiased_by_enumeration(probs, rewards, 3, {k: F(1, k) for k in (1, 2)}) == \
        {"centred": True, "unbiased": True}


def test_identity_needs_b_at_least_2():
    with pytest.raises(ValueError, match="B >= 2"):
        ms.identity_at(1)
