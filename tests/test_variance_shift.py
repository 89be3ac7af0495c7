"""The shift parabola: exact coefficients against the direct variance and against the float64 code."""
from __future__ import annotations

from fractions import Fraction

import pytest

from maxpo.theory import unified_view as unified
from maxpo.theory.unified_view import CategoricalPolicy
from maxpo.theory.variance_shift import optimal_shift, score_norm_mean, shift_parabola, shifted_total_variance

POLICY = CategoricalPolicy.of(["1/2", "1/3", "1/6"], [0, "1/2", 1])


@pytest.mark.parametrize("b,k,method", [(3, 1, "maxpo"), (4, 2, "maxpo"), (4, 3, "pkpo_loo1"), (4, 2, "pkpo_s")])
def test_parabola_against_direct_variance(b: int, k: int, method: str) -> None:
    v0, v1, v2 = shift_parabola(POLICY, b, k, method)
    for shift in (Fraction(0), Fraction(1, 3), Fraction(-2, 5), Fraction(3)):
        assert shifted_total_variance(POLICY, b, k, method, shift) == v0 + 2 * v1 * shift + v2 * shift ** 2
    # v2 = B E||score||^2 (independent samples, mean-zero scores), in closed form
    assert v2 == b * score_norm_mean(POLICY)
    # the float64 implementation in maxpo.theory.unified_view agrees
    f0, f1, f2 = unified.shifted_variance([float(p) for p in POLICY.probs], [float(r) for r in POLICY.rewards],
                                          b, k, method)
    assert (f0, f1, f2) == pytest.approx((float(v0), float(v1), float(v2)), rel=1e-12, abs=1e-15)


def test_optimal_shift_minimises() -> None:
    d = optimal_shift(POLICY, 4, 2)
    best = shifted_total_variance(POLICY, 4, 2, "maxpo", d)
    eps = Fraction(1, 100)
    assert best < shifted_total_variance(POLICY, 4, 2, "maxpo", d + eps)
    assert best < shifted_total_variance(POLICY, 4, 2, "maxpo", d - eps)
