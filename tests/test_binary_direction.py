"""Binary rewards: E ĝ = Σ_i (E[A_i|1] − E[A_i|0]) ∇p, exactly, and RS-GRPO's gradient is out of reach."""
from __future__ import annotations

from fractions import Fraction

import pytest
import sympy as sp

from maxpo import reference
from maxpo.theory import binary_direction as bd
from maxpo.theory import unified_view as uv

PROBS = ["1/2", "1/4", "1/8", "1/8"]
GOOD = [0, 1, 0, 1]


@pytest.mark.parametrize("method,b,k", [("maxpo", 4, 2), ("rloo", 3, 1), ("pkpo_loo1", 4, 3),
                                        ("pkpo_loo", 3, 2), ("dr_grpo", 3, 1)])
def test_expected_gradient_is_gap_times_grad_p(method: str, b: int, k: int) -> None:
    check = bd.check_direction(PROBS, GOOD, b, lambda r: reference.advantages(list(r), k, method))
    assert check.expected == check.predicted
    # an independent enumeration of E ĝ (maxpo.reference via the unified view) agrees
    assert list(check.expected) == uv.expected_gradient(uv.CategoricalPolicy.of(PROBS, GOOD), b, k, method)
    # and it is parallel to ∇J_K with the factor gap / (K (1-p)^(K-1))
    p = Fraction(3, 8)
    grad_j = reference.maxk_objective_gradient([Fraction(x) for x in PROBS], GOOD, k)
    assert list(check.expected) == [check.gap / (k * (1 - p) ** (k - 1)) * g for g in grad_j]


def test_sign_can_flip() -> None:
    check = bd.check_direction(PROBS, GOOD, 3, lambda r: [-v for v in reference.advantages(list(r), 2, "maxpo")])
    assert check.gap < 0 and check.expected == check.predicted


def test_std_normalised_method_float() -> None:
    check = bd.check_direction(PROBS, GOOD, 4, lambda r: reference.advantages(list(r), 2, "chen_passk"))
    assert check.max_error() < 1e-12 and float(check.gap) > 0


def test_gap_is_polynomial_of_degree_below_b() -> None:
    p = sp.Symbol("p")
    gap = bd.conditional_gap_polynomial(4, lambda r: reference.advantages(list(r), 2, "maxpo"), p)
    assert sp.expand(gap - 4 * (1 - p) / 2) == 0  # MaxPO: B (E[A|1]-E[A|0]) = K (1-p)^(K-1) at K = 2
    assert sp.Poly(gap, p).degree() <= 3


@pytest.mark.parametrize("b", [1, 2, 3, 5])
def test_rs_grpo_gradient_not_reachable(b: int) -> None:
    sols = bd.rs_unbiased_solutions(b)
    assert len(sols) == 1 and all(v == 0 for v in sols[0].values())


def test_bad_policy_rejected() -> None:
    with pytest.raises(ValueError, match="0/1 reward"):
        bd.check_direction(["1/2", "1/2"], [0, 2], 2, lambda r: [Fraction(0)] * 2)
