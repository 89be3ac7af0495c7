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
