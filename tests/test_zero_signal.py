"""The zero-signal zone, against brute force with exact fractions (maxpo.reference)."""
from __future__ import annotations

import itertools
import math
from fractions import Fraction

import pytest

import maxpo
from maxpo import reference
from maxpo.theory.zero_signal import informative_counts, no_signal_probability, zero_signal_ties

REAL_VALUES = (Fraction(0), Fraction(1, 2), Fraction(1))


def _top_ties(r: tuple) -> int:
    return sum(v == max(r) for v in r)


def _brute_threshold(method: str, b: int, k: int) -> int | None:
    """Smallest t such that every group with >= t top ties has all-zero advantages, by enumeration."""
    values = (0, 1) if maxpo.METHODS[method].binary_only else REAL_VALUES
    zero_at: dict[int, bool] = {t: True for t in range(1, b + 1)}
    for r in itertools.product(values, repeat=b):
        a = reference.advantages(list(r), k, method)
        if any(v != 0 for v in a):
            zero_at[_top_ties(r)] = False
    ts = [t for t in range(1, b + 1) if all(zero_at[u] for u in range(t, b + 1))]
    return min(ts) if ts else None


CASES = [(m, b, k) for m in maxpo.METHODS for b in range(2, 6) for k in range(1, b + 1)
         if maxpo.METHODS[m].check(b, k) is None]


@pytest.mark.parametrize("method,b,k", CASES)
def test_threshold_matches_brute_force(method: str, b: int, k: int) -> None:
    assert zero_signal_ties(method, b, k) == _brute_threshold(method, b, k)


def test_the_two_counterexamples_of_the_book() -> None:
    assert all(v == 0 for v in reference.advantages([0, Fraction(1, 2), 1, 1, 1], 3, "maxpo"))
    assert all(v == 0 for v in reference.advantages([0, 1, 1, 1], 3, "pkpo_loo1"))
    assert zero_signal_ties("maxpo", 5, 3) == 3 and zero_signal_ties("pkpo_loo1", 4, 3) == 3


@pytest.mark.parametrize("b,k", [(4, 2), (6, 3), (8, 7)])
def test_no_signal_probability_by_enumeration(b: int, k: int) -> None:
    p = Fraction(1, 3)
    for method in ("maxpo", "pkpo_loo1", "rloo", "pkpo_s"):
        wasted = Fraction(0)
        for outcome in itertools.product((0, 1), repeat=b):
            prob = math.prod(p if o else 1 - p for o in outcome)
            if all(v == 0 for v in reference.advantages(list(outcome), k, method)):
                wasted += prob
        assert no_signal_probability(method, b, k, 1 / 3) == pytest.approx(float(wasted), abs=1e-14)


def test_informative_counts_and_errors() -> None:
    assert list(informative_counts("maxpo", 8, 4)) == [1, 2, 3, 4]
    assert list(informative_counts("pkpo_loo1", 8, 4)) == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="unknown method"):
        zero_signal_ties("nope", 4, 2)
    with pytest.raises(ValueError, match="maxpo at B=4, K=4"):
        zero_signal_ties("maxpo", 4, 4)
    with pytest.raises(ValueError, match="probability"):
        no_signal_probability("maxpo", 4, 2, 1.5)


@pytest.mark.parametrize("b, k", [(0, 1), (4, 0), (-2, 1), (4, -1), (4.0, 2), (4, 2.0), ("4", 2)])
def test_group_size_and_k_must_be_positive_integers(b: object, k: object) -> None:
    with pytest.raises(ValueError, match="need integers B >= 1 and K >= 1"):
        zero_signal_ties("rloo", b, k)  # type: ignore[arg-type]


@pytest.mark.parametrize("p", [-0.01, 1.01, float("nan")])
def test_no_signal_probability_refuses_non_probabilities(p: float) -> None:
    with pytest.raises(ValueError, match="probability"):
        no_signal_probability("maxpo", 4, 2, p)


def test_no_signal_probability_at_the_ends_and_never_negative() -> None:
    # p = 0: every group is all wrong; p = 1: all right, which gives MaxPO no signal either
    assert no_signal_probability("maxpo", 6, 2, 0.0) == 1.0 and no_signal_probability("maxpo", 6, 2, 1.0) == 1.0
    # pkpo_s is silent only for an all-wrong group: (1 - p)^B, here 0.1^20 = 1e-20, which the sum of the other
    # terms cannot resolve in float64 (1 - sum is -2.2e-16 before the clamp): a probability is never negative
    assert 0.0 <= no_signal_probability("pkpo_s", 20, 1, 0.9) < 1e-15
    assert 0.0 <= no_signal_probability("pkpo_s", 37, 1, 0.7) < 1e-15


def test_a_group_of_one_is_accepted_where_the_method_accepts_it() -> None:
    # pkpo_s takes K <= B, so B = K = 1 is a valid group: its one advantage is its reward, never forced to 0
    assert zero_signal_ties("pkpo_s", 1, 1) is None
    assert list(informative_counts("pkpo_s", 1, 1)) == [1]


def test_a_method_without_a_rule_is_refused_not_guessed(monkeypatch: pytest.MonkeyPatch) -> None:
    # every method of METHODS has a rule (test_threshold_matches_brute_force); a newly added one must get one
    import dataclasses

    monkeypatch.setitem(maxpo.METHODS, "new_method", dataclasses.replace(maxpo.METHODS["rloo"], name="new_method"))
    with pytest.raises(ValueError, match="no zero-signal rule is known for method 'new_method'"):
        zero_signal_ties("new_method", 4, 2)
