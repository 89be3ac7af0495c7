"""The variance-optimal shift and λ of the loo-1/MaxPO family (maxpo.theory.family_variance), exactly.

The parabola is checked against the variance computed directly at each λ; the
decomposition c* = δ + norm + cross is checked as an identity between quantities
computed on separate routes, and its two terms against cases built to make them
vanish (or not).
"""
from __future__ import annotations

from fractions import Fraction

import pytest

from maxpo.theory import family_variance as fv
from maxpo.theory.unified_view import CategoricalPolicy

SOFTMAX = [
    (CategoricalPolicy.of(["1/2", "1/3", "1/6"], [0, "1/2", 1]), 4, 2),
    (CategoricalPolicy.of(["1/3", "1/3", "1/3"], [0, "1/2", 1]), 4, 3),
    (CategoricalPolicy.of(["3/4", "1/4"], [0, 1]), 5, 2),
]
TWO_BY_TWO = CategoricalPolicy.of(["1/4"] * 4, [0, 0, 1, 1])  # two actions per reward value


@pytest.mark.parametrize("policy,b,k", SOFTMAX)
def test_parabola_against_direct_variance(policy: CategoricalPolicy, b: int, k: int) -> None:
    v0, v1, v2 = fv.family_parabola(policy, b, k)
    for lam in (Fraction(-1), Fraction(0), Fraction(2, 5), Fraction(1), Fraction(5, 2)):
        assert fv.family_variance(policy, b, k, lam) == v0 + 2 * lam * v1 + lam ** 2 * v2
    star = fv.optimal_family_lambda(policy, b, k)
    eps = Fraction(1, 1000)
    best = fv.family_variance(policy, b, k, star)
    assert best < fv.family_variance(policy, b, k, star + eps) and best < fv.family_variance(policy, b, k, star - eps)


@pytest.mark.parametrize("policy,b,k", SOFTMAX)
def test_shift_decomposition_is_an_identity(policy: CategoricalPolicy, b: int, k: int) -> None:
    d = fv.shift_decomposition(policy, b, k)
    assert d.c_star == d.delta + d.norm_term + d.cross_term
    # delta is the mean loo-1 advantage: (K/B)(J_K - J_{K-1}) > 0
    assert d.delta > 0


def test_equal_score_norms_kill_the_norm_term() -> None:
    # a uniform softmax: every action's score e_a - pi has the same norm
    d = fv.shift_decomposition(CategoricalPolicy.of(["1/3"] * 3, [0, "1/2", 1]), 4, 2)
    assert d.norm_term == 0 and d.cross_term != 0  # a few-arm bandit still has a cross term


def test_assumption_holds_then_best_shift_is_the_offset() -> None:
    # scores with equal norms and mean zero within each reward value: (i) and (ii) hold exactly
    d = fv.shift_decomposition(TWO_BY_TWO, 4, 2, scores=[[1], [-1], [1], [-1]])
    assert d.norm_term == 0 and d.cross_term == 0 and d.c_star == d.delta == Fraction(1, 8)


def test_unequal_score_norms_break_it() -> None:
    # as in the lab: wrong answers (reward 0) have larger score norms; mean zero within each reward
    scores = [[2, 1], [-2, -1], [1, 0], [-1, 0]]
    d = fv.shift_decomposition(TWO_BY_TWO, 4, 2, scores=scores)
    assert d.cross_term == 0 and d.norm_term < 0 and d.c_star < d.delta
    # the other way round the best shift exceeds the offset
    d2 = fv.shift_decomposition(TWO_BY_TWO, 4, 2, scores=[[1, 0], [-1, 0], [2, 1], [-2, -1]])
    assert d2.norm_term > 0 and d2.c_star > d2.delta
    # and the best member of the family moves with the shift: lambda* lower when c* < delta
    assert fv.optimal_family_lambda(TWO_BY_TWO, 4, 2, scores) < fv.optimal_family_lambda(
        TWO_BY_TWO, 4, 2, [[1], [-1], [1], [-1]])


def test_softmax_unequal_probabilities() -> None:
    # a less probable action has a larger softmax score norm (1 - 2 pi_a + |pi|^2): the norm term appears
    d = fv.shift_decomposition(CategoricalPolicy.of(["3/4", "1/4"], [0, 1]), 4, 2)
    assert d.norm_term != 0


def test_scores_must_be_valid() -> None:
    with pytest.raises(ValueError, match="mean zero"):
        fv.shift_decomposition(TWO_BY_TWO, 4, 2, scores=[[1], [1], [1], [-1]])
    with pytest.raises(ValueError, match="one score vector"):
        fv.family_parabola(TWO_BY_TWO, 4, 2, scores=[[1], [-1]])
