"""Sympy proofs of the Baselines chapter: every identity holds, and the K = B obstruction."""
from __future__ import annotations

import pytest
import sympy as sp

from maxpo.theory import baselines_symbolic as sb
from maxpo.theory import symbolic as S

SIZES = [(b, k) for b in range(2, 6) for k in range(1, b + 1)]


@pytest.mark.parametrize("b,k", SIZES)
def test_every_identity_holds(b: int, k: int) -> None:
    idents = sb.identities(b, k)
    assert idents
    for ident in idents:
        assert ident.holds(), (ident.name, ident.residuals)


def test_a_false_identity_is_rejected() -> None:
    r = S.sorted_reward_symbols(4)
    s = S.signal_by_subsets(r, 2, assume_sorted=True)
    wrong = sb.Identity("sum s = rho (false)", 4, 2, (sp.Add(*s),), (S.maxk_by_subsets(r, 2, assume_sorted=True),))
    assert not wrong.holds()


def test_definitions_cover_sizes() -> None:
    r = S.sorted_reward_symbols(4)
    assert set(sb.advantage_definitions(r, 4)) >= {"pkpo_s", "pkpo_loo1", "tang_loo"}
    assert "maxpo" not in sb.advantage_definitions(r, 4)
    assert "pkpo_loo1" not in sb.advantage_definitions(r, 1)
    with pytest.raises(ValueError):
        S.maxk_by_subsets(r, 5, assume_sorted=True)


@pytest.mark.parametrize("b,k", [(b, k) for b, k in SIZES if k < b])
def test_baselines_avoid_own_sample(b: int, k: int) -> None:
    assert all(sb.own_reward_free(b, k).values())


@pytest.mark.parametrize("b,k", [(b, k) for b, k in SIZES if k >= 2])
def test_loo1_nonnegative_and_zero_for_wrong_answers(b: int, k: int) -> None:
    cert = sb.loo1_sign_certificate(b, k)
    assert cert["loo1_nonnegative"]
    assert cert["loo1_top_pattern"]
    assert sb.loo1_binary_wrong_zero(b, k)
    if k < b:
        assert cert["maxpo_lowest_pattern"]


def test_sign_patterns_against_fractions() -> None:
    """The worst sample's MaxPO advantage is < 0 iff r_(K) < r_(B); the best one's loo-1 > 0 iff r_(K-1) < r_(B)."""
    import itertools
    from fractions import Fraction

    from maxpo import reference
    for b in range(3, 6):
        for r in itertools.combinations_with_replacement((Fraction(0), Fraction(1, 3), Fraction(1)), b):
            for k in range(2, b):
                assert (reference.advantages(r, k, "maxpo")[0] < 0) == (r[k - 1] < r[-1])
                assert (reference.advantages(r, k, "pkpo_loo1")[-1] > 0) == (r[k - 2] < r[-1])


def test_gap_coefficients_example() -> None:
    r = S.sorted_reward_symbols(3)
    c0, cs = sb.gap_coefficients(r[2] - r[0], r)
    assert c0 == 0 and cs == [1, 1]


@pytest.mark.parametrize("b", range(1, 7))
def test_mixed_differences(b: int) -> None:
    assert sb.mixed_difference_of_max(b) == (-1) ** (b + 1) * b
    assert sb.mixed_difference_of_baselines(b) == 0


@pytest.mark.parametrize("b", [2, 3, 4])
def test_centering_system_solvable_iff_k_below_b(b: int) -> None:
    for k in range(1, b + 1):
        system = sb.centering_system(b, k)
        assert system["rank"] == 2 ** b - 1
        assert system["solvable"] == (k < b)


@pytest.mark.parametrize("b,k", SIZES)
def test_package_matches_definitions(b: int, k: int) -> None:
    diffs = sb.compare_with_package(b, k, seed=b * 10 + k)
    assert diffs
    assert max(diffs.values()) < 1e-12
