"""When a whole group is silent: the mixture rule and PKPO's rule against exact enumeration."""
from __future__ import annotations

from fractions import Fraction

import pytest
import torch

import maxpo
from maxpo import reference
from maxpo.theory import silent_groups as sg


def test_mixture_rule_exhaustive_over_half_grid() -> None:
    # every r in {0, 1/2, 1}^B and every non-zero w in {0, 1/2, 1}^(B-1), B <= 5
    check = sg.check_mixture_rule(5)
    assert check.ok, check.failures[:5]
    assert 0 < check.silent < check.cases


def test_mixture_with_weight_on_one_is_silent_only_on_equal_rewards() -> None:
    for r in ([0, 0, 1], [0, 1, 1, 1], [0, Fraction(1, 2), 1, 1, 1], [1, 1, 1, 1]):
        a = reference.mixture_advantages(r, {1: 1, 2: Fraction(1, 3), 3: 5} if len(r) > 3 else {1: 1, 2: 2}, "maxpo")
        assert all(v == 0 for v in a) == (len(set(r)) == 1), r


def test_signed_counterexample_is_silent_in_fractions_and_in_the_package() -> None:
    assert sg.signed_counterexample() == [0, 0, 0]
    got = maxpo.advantages(torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), {1: 1.0, 2: -0.5})
    assert got.abs().max().item() < 1e-15
    with pytest.raises(ValueError, match="every weight >= 0"):
        sg.mixture_silent_ties(3, {1: 1, 2: Fraction(-1, 2)})


def test_exercise_mixture_without_k1_follows_its_smallest_k() -> None:
    # {2: 1, 3: 1} at B = 5 is silent iff t >= 4, the zone of K = 2
    assert sg.mixture_silent_ties(5, {2: 1, 3: 1}) == 4
    assert any(v != 0 for v in reference.mixture_advantages([0, Fraction(1, 2), 1, 1, 1], {2: 1, 3: 1}))
    assert all(v == 0 for v in reference.mixture_advantages([0, 1, 1, 1, 1], {2: 1, 3: 1}))


def test_pkpo_rule_exhaustive_with_signed_rewards() -> None:
    check = sg.check_pkpo_rule(5)
    assert check.ok, check.failures[:5]
    assert check.silent > 0


@pytest.mark.parametrize("r,k", [([0.0, 0.0, 0.0], 2), ([-1.0, 0.0, 0.0, 0.0], 3)])
def test_pkpo_silent_examples_in_the_package(r: list[float], k: int) -> None:
    assert sg.pkpo_silent(r, k)
    for method in ("pkpo_s", "pkpo_loo"):
        assert maxpo.advantages(r, k, method).abs().max().item() == 0.0


def test_pkpo_not_silent_in_zone_with_nonzero_top() -> None:
    # in the zone but top reward 1: every sample gets the same non-zero push
    for method in ("pkpo_s", "pkpo_loo"):
        a = reference.advantages([0, 1, 1, 1], 3, method)
        assert len(set(a)) == 1 and a[0] != 0
