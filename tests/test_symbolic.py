"""Fast unit tests of maxpo.theory.symbolic: each derivation against brute force or a known value."""
from __future__ import annotations

import itertools
import math
from fractions import Fraction

import pytest
import sympy as sp

from maxpo import reference
from maxpo.theory import symbolic as S

B, K, C, IDX = sp.symbols("B K c i", integer=True, positive=True)

# a softmax policy over three actions with symbolic probabilities, and the simplex they live on
P3 = sp.symbols("p1:4", positive=True)
VALUES3 = [0, sp.Rational(1, 2), 1]
ON_SIMPLEX3 = {P3[2]: 1 - P3[0] - P3[1]}


# --- 1. combinatorial identities, symbolic B and K ---

def test_hockey_stick_by_summation_is_zero():
    assert S.hockey_stick_by_summation(B, K) == 0


def test_hockey_stick_by_induction_holds():
    proof = S.hockey_stick_by_induction(B, K)
    assert proof.base == 0 and proof.step == 0 and proof.holds


def test_induction_proof_detects_a_false_step():
    bad = S.InductionProof("false", sp.Integer(0), sp.Integer(1))
    assert not bad.holds


def test_weights_sum_to_one_symbolically():
    assert S.weights_sum_to_one(B, K) == 0


@pytest.mark.parametrize("b", range(1, 9))
def test_maxk_weights_match_subset_counting(b):
    for k in range(1, b + 1):
        w = S.maxk_weights(b, k)
        assert sum(w) == 1
        # weight of rank i = share of K-subsets whose largest index is i
        counts = [0] * b
        for subset in itertools.combinations(range(b), k):
            counts[max(subset)] += 1
        assert w == [sp.Rational(cnt, math.comb(b, k)) for cnt in counts]


def test_ustatistic_rank_form_equals_subset_mean():
    r = [sp.Rational(x, 7) for x in (3, 0, 5, 5, 1, 6)]
    for k in range(1, 7):
        assert S.maxk_ustatistic(r, k) == S.maxk_by_subsets(r, k)


def test_passk_closed_form_symbolically_and_by_counting():
    assert S.passk_from_weights_equals_closed_form(B, K, C) == 0
    for b, k in [(5, 2), (8, 4), (6, 6)]:
        for c in range(b + 1):
            rewards = [0] * (b - c) + [1] * c
            assert S.maxk_ustatistic(rewards, k) == S.passk_closed_form(b, k, c)


def test_signal_subset_count_identity():
    assert S.signal_subset_count_identity(B, K, IDX) == 0


def test_bad_b_k_raise():
    with pytest.raises(ValueError, match="1 <= K <= B"):
        S.maxk_weights(3, 4)
    with pytest.raises(ValueError):
        S.signal_by_subsets([1, 2], 0)
    with pytest.raises(ValueError, match="1 <= K <= B"):
        S.maxk_by_subsets(S.sorted_reward_symbols(4), 5, assume_sorted=True)
    with pytest.raises(ValueError, match="at least one reward"):
        S.sorted_reward_symbols(0)


# --- 2. objective of a categorical policy ---

@pytest.mark.parametrize("k", [1, 2, 3])
def test_maxk_objective_matches_brute_force(k):
    values = [Fraction(1, 2), Fraction(0), Fraction(1), Fraction(1, 2)]  # a tie on purpose
    probs = [Fraction(1, 5), Fraction(1, 10), Fraction(3, 10), Fraction(2, 5)]
    got = S.maxk_objective([sp.Rational(v) for v in values], [sp.Rational(p) for p in probs], k)
    assert got == sp.Rational(reference.maxk_objective(probs, values, k))  # all k-tuples of actions


def test_batches_counts_cover_all_ordered_batches():
    for n, b in [(2, 3), (3, 3), (4, 2)]:
        rows = S.batches(n, b)
        assert sum(count for _, count in rows) == n**b
        assert len(rows) == math.comb(n + b - 1, b)


def test_ustatistic_is_unbiased_symbolically():
    for b, k in [(3, 2), (4, 3), (3, 3)]:
        estimate = S.expected_value(VALUES3, P3, b, lambda r, k=k: S.maxk_ustatistic(r, k))
        gap = estimate - S.maxk_objective(VALUES3, P3, k)
        assert sp.expand(gap.subs(ON_SIMPLEX3)) == 0


# --- 3. no unbiased estimator for B < K ---

@pytest.mark.parametrize("b,k", [(b, k) for b in range(0, 6) for k in range(1, 7)])
def test_unbiased_passk_estimator_exists_iff_b_at_least_k(b, k):
    sol = S.solve_unbiased_passk_estimator(b, k)
    if b < k:
        assert sol is None
    else:
        assert sol == [S.passk_closed_form(b, k, c) for c in range(b + 1)]


def test_binary_expectation_degree_at_most_b():
    p = sp.Symbol("p")
    f = sp.symbols("f0:4")
    assert sp.Poly(S.binary_estimator_expectation(f, p), p).degree() <= 3


# --- 4. signal and score-function gradient ---

@pytest.mark.parametrize("b", [2, 3, 4, 5])
def test_signal_forms_agree_on_sorted_symbols(b):
    r = S.sorted_reward_symbols(b)
    for k in range(1, b + 1):
        by_subsets = S.signal_by_subsets(r, k, assume_sorted=True)
        closed = S.signal_closed_form(r, k)
        q = S.q_values(r, k, assume_sorted=True)
        assert all(sp.expand(x - y) == 0 for x, y in zip(by_subsets, closed))
        assert all(sp.expand(x - sp.Rational(k, b) * y) == 0 for x, y in zip(by_subsets, q))
        assert sp.expand(sum(by_subsets) - k * S.maxk_ustatistic(r, k, assume_sorted=True)) == 0
        assert sp.expand(S.maxk_by_subsets(r, k, assume_sorted=True) - S.maxk_ustatistic(r, k, assume_sorted=True)) == 0


def test_signal_matches_project_test_vector():
    r = [sp.Rational(x, 10) for x in (1, 3, 5, 7, 9)]
    assert S.signal_by_subsets(r, 2) == [sp.Rational(x, 100) for x in (24, 24, 26, 30, 36)]
    assert S.maxk_ustatistic(r, 2) == sp.Rational(7, 10)


def test_signal_handles_ties_and_order():
    r = [1, 0, 1, sp.Rational(1, 2)]
    s = S.signal_by_subsets(r, 2)
    assert s[0] == s[2]
    srt = sorted(range(4), key=lambda j: r[j])
    closed = S.signal_closed_form([r[j] for j in srt], 2)
    assert [s[j] for j in srt] == closed


def test_softmax_score_sums_to_zero_in_expectation():
    mean = [sp.Add(*[P3[a] * S.softmax_score(P3, a)[j] for a in range(3)]) for j in range(3)]
    assert all(sp.expand(m.subs(ON_SIMPLEX3)) == 0 for m in mean)


def test_maxk_gradient_softmax_matches_the_fraction_reference():
    at = {P3[0]: sp.Rational(1, 5), P3[1]: sp.Rational(1, 2), P3[2]: sp.Rational(3, 10)}
    probs = [Fraction(1, 5), Fraction(1, 2), Fraction(3, 10)]
    for k in (1, 2, 3):
        got = [g.subs(at) for g in S.maxk_gradient_softmax(VALUES3, P3, k)]
        assert got == [sp.Rational(g) for g in reference.maxk_objective_gradient(probs, VALUES3, k)]


def test_signal_is_unbiased_for_softmax_gradient():
    truth = S.maxk_gradient_softmax(VALUES3, P3, 2)
    est = S.expected_score_gradient(VALUES3, P3, 3, lambda r: S.signal_by_subsets(r, 2))
    assert all(sp.expand((t - e).subs(ON_SIMPLEX3)) == 0 for t, e in zip(truth, est))


def test_expected_score_gradient_detects_a_biased_estimator():
    truth = S.maxk_gradient_softmax(VALUES3, P3, 2)
    # the max of the whole batch given to every sample: not the max@2 gradient
    est = S.expected_score_gradient(VALUES3, P3, 3, lambda r: [max(r)] * len(r))
    assert any(sp.expand((t - e).subs(ON_SIMPLEX3)) != 0 for t, e in zip(truth, est))


def test_expected_score_gradient_checks_advantage_length():
    p = sp.symbols("p1:3", positive=True)
    with pytest.raises(ValueError, match="advantages returned"):
        S.expected_score_gradient([0, 1], p, 2, lambda r: [0])
