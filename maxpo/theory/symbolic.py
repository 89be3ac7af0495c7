"""Exact derivations behind the book, in sympy: each function proves or computes one thing.

Everything here is exact (sympy integers, rationals and symbols; no floating
point), so a chapter can ``assert`` the result and the build fails if a
derivation is wrong. The torch estimators in :mod:`maxpo.estimators` are checked
*against* these functions, never the other way round.

Sections (add new ones at the end, in chapter order):

1. Combinatorial identities for symbolic ``B`` and ``K``: the hockey-stick
   identity (by sympy's summation and, independently, by induction), the
   max@K rank weights summing to one, the pass@K closed form, and the count of
   K-subsets behind the signal's closed form.
2. The objective of a categorical policy: ``J_K`` from the reward CDF, exact
   expectations over all batches, unbiasedness of the U-statistic.
3. Why no unbiased estimator of pass@K exists from ``B < K`` samples.
4. The max@K signal ``s_i``: subset definition, sorted closed form, the
   ``s_i = (K/B) Q_i`` identity, and the exact score-function gradient check on a
   softmax policy.

The building blocks of sections 2 and 4 (the U-statistic, the signal and the
``Q_i`` from their subset definitions and in closed form, on symbols
:func:`sorted_reward_symbols`) are also what :mod:`maxpo.theory.baselines_symbolic`
builds the baselines of chapters 4-5 from.

Conventions: rewards "in ascending order" means ``r[0] <= r[1] <= ...``; the
functions with ``assume_sorted=True`` take the maximum of a subset by its
largest index, which lets them work on sympy symbols ``r_1 <= ... <= r_B``.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import sympy as sp

__all__ = [
    "InductionProof",
    "binomial_weight",
    "maxk_weights",
    "hockey_stick_by_summation",
    "hockey_stick_by_induction",
    "weights_sum_to_one",
    "passk_closed_form",
    "passk_from_weights_equals_closed_form",
    "signal_subset_count_identity",
    "maxk_objective",
    "batches",
    "expected_value",
    "maxk_by_subsets",
    "maxk_ustatistic",
    "binary_estimator_expectation",
    "solve_unbiased_passk_estimator",
    "sorted_reward_symbols",
    "signal_by_subsets",
    "signal_closed_form",
    "q_values",
    "softmax_score",
    "maxk_gradient_softmax",
    "expected_score_gradient",
]

Number: TypeAlias = sp.Expr | int
AdvantageFn = Callable[[Sequence[sp.Expr]], Sequence[sp.Expr]]


def sorted_reward_symbols(B: int) -> tuple[sp.Symbol, ...]:
    """Real symbols ``r_1..r_B``, to be read as ``r_1 <= r_2 <= ... <= r_B``."""
    if B < 1:
        raise ValueError(f"need at least one reward, got B={B}")
    return sp.symbols(f"r_1:{B + 1}", real=True)


def _subset_max(r: Sequence[sp.Expr], subset: Sequence[int], assume_sorted: bool) -> sp.Expr:
    """``max_{j in subset} r_j``; with ``assume_sorted`` the reward at the largest index (works on symbols)."""
    if assume_sorted:
        return r[max(subset)]
    return max(r[j] for j in subset)


def _check_bk(B: int, K: int) -> None:
    if not 1 <= K <= B:
        raise ValueError(f"need 1 <= K <= B, got B={B}, K={K}")


def _group(rewards: Sequence[Number], K: int) -> list[sp.Expr]:
    """A group's rewards as sympy expressions, after checking ``1 <= K <= B``."""
    r = [sp.sympify(x) for x in rewards]
    _check_bk(len(r), K)
    return r


# ---------------------------------------------------------------------------
# 1. Combinatorial identities for symbolic B and K
# ---------------------------------------------------------------------------

def binomial_weight(i: Number, B: Number, K: Number) -> sp.Expr:
    """Weight of the ``i``-th smallest reward (1-based) in the max@K U-statistic.

    ``C(i-1, K-1) / C(B, K)``: the fraction of the ``C(B, K)`` subsets of size K
    whose maximum is the ``i``-th smallest sample (the other ``K-1`` members
    come from the ``i-1`` smaller ones).
    """
    return sp.binomial(i - 1, K - 1) / sp.binomial(B, K)


def maxk_weights(B: int, K: int) -> list[sp.Rational]:
    """The ``B`` rank weights ``C(i-1,K-1)/C(B,K)``, ``i = 1..B``, as exact rationals."""
    _check_bk(B, K)
    return [binomial_weight(i, B, K) for i in range(1, B + 1)]


def hockey_stick_by_summation(B: sp.Symbol, K: sp.Symbol) -> sp.Expr:
    """``sum_{i=K}^{B} C(i-1, K-1) - C(B, K)``, summed in closed form by sympy and simplified.

    Returns 0 when sympy's (Gosper) summation proves the hockey-stick identity
    for symbolic ``B`` and ``K``.
    """
    i = sp.Dummy("i", integer=True, positive=True)
    total = sp.summation(sp.binomial(i - 1, K - 1), (i, K, B))
    return sp.simplify(sp.combsimp(total - sp.binomial(B, K)))


@dataclass(frozen=True)
class InductionProof:
    """An identity ``lhs(n) = rhs(n)`` for all ``n >= n0``, proved by induction.

    ``base`` is ``lhs(n0) - rhs(n0)`` and ``step`` is
    ``[lhs(n+1) - lhs(n)] - [rhs(n+1) - rhs(n)]``, both simplified; the proof
    holds when both are identically zero.
    """

    statement: str
    base: sp.Expr
    step: sp.Expr

    @property
    def holds(self) -> bool:
        return self.base == 0 and self.step == 0


def hockey_stick_by_induction(B: sp.Symbol, K: sp.Symbol) -> InductionProof:
    """Prove ``sum_{i=K}^{B} C(i-1, K-1) = C(B, K)`` for all ``B >= K`` by induction on ``B``.

    Base ``B = K``: both sides are 1. Step ``B -> B+1``: the left side grows by
    its new term ``C(B, K-1)``, the right side by ``C(B+1, K) - C(B, K)``, which is
    ``C(B, K-1)`` by Pascal's rule; sympy checks that rule for symbolic ``B`` and ``K``
    by rewriting the binomials as gamma functions. No summation is evaluated.
    """
    base = sp.simplify(sp.binomial(K - 1, K - 1) - sp.binomial(K, K))
    lhs_increment = sp.binomial(B, K - 1)  # term i = B + 1 of the sum
    rhs_increment = sp.binomial(B + 1, K) - sp.binomial(B, K)
    step = sp.simplify(sp.gammasimp(sp.expand_func(lhs_increment - rhs_increment).rewrite(sp.gamma)))
    return InductionProof("sum_{i=K}^{B} C(i-1,K-1) = C(B,K) for B >= K", base, step)


def weights_sum_to_one(B: sp.Symbol, K: sp.Symbol) -> sp.Expr:
    """``sum_i C(i-1,K-1)/C(B,K) - 1`` for symbolic ``B``, ``K`` (0 when the weights sum to one).

    Terms with ``i < K`` vanish, so the sum runs over ``i = K..B``.
    """
    i = sp.Dummy("i", integer=True, positive=True)
    total = sp.summation(binomial_weight(i, B, K), (i, K, B))
    return sp.simplify(sp.combsimp(total - 1))


def passk_closed_form(B: Number, K: Number, c: Number) -> sp.Expr:
    """Unbiased pass@K from ``c`` correct answers among ``B``: ``1 - C(B-c, K)/C(B, K)``."""
    return 1 - sp.binomial(B - c, K) / sp.binomial(B, K)


def passk_from_weights_equals_closed_form(B: sp.Symbol, K: sp.Symbol, c: sp.Symbol) -> sp.Expr:
    """Difference between the weighted sum and the pass@K closed form, for symbolic B, K, c.

    With binary rewards sorted ascending, the ``c`` correct answers hold ranks
    ``B-c+1..B``, so the U-statistic is ``sum_{i=B-c+1}^{B} C(i-1,K-1)/C(B,K)``.
    Writing it as ``1 -`` the sum over ranks ``K..B-c`` and applying the hockey
    stick at ``B-c`` gives ``1 - C(B-c,K)/C(B,K)``. Returns 0 when sympy confirms it.
    """
    i = sp.Dummy("i", integer=True, positive=True)
    top = sp.summation(sp.binomial(i - 1, K - 1), (i, B - c + 1, B))
    return sp.simplify(sp.combsimp(top / sp.binomial(B, K) - passk_closed_form(B, K, c)))


def signal_subset_count_identity(B: sp.Symbol, K: sp.Symbol, i: sp.Symbol) -> sp.Expr:
    """Count check behind the signal's closed form, for symbolic ``B``, ``K``, ``i``.

    Of the ``C(B-1, K-1)`` K-subsets that contain the ``i``-th smallest sample,
    ``C(i-1, K-1)`` have it as their maximum and ``C(m-2, K-2)`` have the
    ``m``-th smallest (``m > i``) as their maximum. Returns
    ``C(i-1,K-1) + sum_{m=i+1}^{B} C(m-2,K-2) - C(B-1,K-1)``, simplified (0 when it holds).
    """
    m = sp.Dummy("m", integer=True, positive=True)
    above = sp.summation(sp.binomial(m - 2, K - 2), (m, i + 1, B))
    gap = sp.simplify(sp.combsimp(sp.binomial(i - 1, K - 1) + above - sp.binomial(B - 1, K - 1)))
    # sympy answers with a Piecewise that splits off K = 1; simplify each branch
    return sp.simplify(sp.gammasimp(gap))


# ---------------------------------------------------------------------------
# 2. The objective of a categorical policy, and exact expectations over batches
# ---------------------------------------------------------------------------

def maxk_objective(values: Sequence[Number], probs: Sequence[Number], K: int) -> sp.Expr:
    """``J_K = E[max of K i.i.d. rewards] = sum_x x (F(x)^K - F(x^-)^K)``, over distinct rewards ``x``.

    ``F(x)^K`` is the probability that all K rewards are ``<= x``; the difference
    with ``F(x^-)^K`` (all ``< x``) is the probability that the maximum is ``x``.
    Exact in ``probs`` (rationals or sympy symbols).
    """
    levels = sorted(set(sp.sympify(v) for v in values))
    total = sp.Integer(0)
    below = sp.Integer(0)
    for x in levels:
        at_or_below = below + sp.Add(*[p for v, p in zip(values, probs) if sp.sympify(v) == x])
        total += x * (at_or_below**K - below**K)
        below = at_or_below
    return total


def batches(n_actions: int, B: int) -> list[tuple[tuple[int, ...], int]]:
    """Every multiset of ``B`` actions out of ``n_actions``, with its number of orderings.

    The estimators are symmetric functions of the batch, so an expectation
    over all ``n_actions**B`` ordered batches equals a sum over multisets
    weighted by their multinomial counts.
    """
    out = []
    for combo in itertools.combinations_with_replacement(range(n_actions), B):
        count = math.factorial(B)
        for a in set(combo):
            count //= math.factorial(combo.count(a))
        out.append((combo, count))
    return out


def _weighted_batches(
    values: Sequence[Number], probs: Sequence[Number], B: int
) -> list[tuple[tuple[int, ...], sp.Expr, list[sp.Expr]]]:
    """``(actions, probability of all their orderings, rewards)`` for every multiset of :func:`batches`."""
    vals = [sp.sympify(v) for v in values]
    return [(combo, count * sp.Mul(*[probs[a] for a in combo]), [vals[a] for a in combo])
            for combo, count in batches(len(vals), B)]


def expected_value(
    values: Sequence[Number],
    probs: Sequence[Number],
    B: int,
    statistic: Callable[[Sequence[sp.Expr]], sp.Expr],
) -> sp.Expr:
    """``E[statistic(r_1..r_B)]`` over ``B`` i.i.d. draws of the categorical policy, exactly.

    ``statistic`` must be a symmetric function of the rewards.
    """
    total = sp.Integer(0)
    for _, weight, rewards in _weighted_batches(values, probs, B):
        total += weight * statistic(rewards)
    return sp.expand(total)


def maxk_by_subsets(rewards: Sequence[Number], K: int, *, assume_sorted: bool = False) -> sp.Expr:
    """The max@K U-statistic from its definition: the mean of ``max_S`` over all K-subsets ``S``.

    ``O(C(B,K) K)``; an exact reference for :func:`maxk_ustatistic`. Symbolic
    rewards must be given in ascending order with ``assume_sorted=True``.
    """
    r = _group(rewards, K)
    subsets = list(itertools.combinations(range(len(r)), K))
    return sp.Add(*[_subset_max(r, S, assume_sorted) for S in subsets]) / len(subsets)


def maxk_ustatistic(rewards: Sequence[Number], K: int, *, assume_sorted: bool = False) -> sp.Expr:
    """The max@K U-statistic ``sum_i C(i-1,K-1)/C(B,K) r_(i)``, exactly.

    Numeric rewards are sorted here; symbolic rewards must be given in
    ascending order with ``assume_sorted=True``.
    """
    r = [sp.sympify(x) for x in rewards]
    if not assume_sorted:
        r = sorted(r)
    return sp.Add(*[w * x for w, x in zip(maxk_weights(len(r), K), r)])


# ---------------------------------------------------------------------------
# 3. No unbiased pass@K estimator from B < K samples
# ---------------------------------------------------------------------------

def binary_estimator_expectation(f: Sequence[sp.Expr], p: sp.Symbol) -> sp.Expr:
    """``E[f(c)]`` when ``c ~ Binomial(B, p)`` counts the correct answers, ``B = len(f) - 1``.

    A symmetric estimator from ``B`` pass/fail samples is a function of ``c``
    alone; its expectation is a polynomial in ``p`` of degree at most ``B``.
    """
    B = len(f) - 1
    return sp.expand(sp.Add(*[f[c] * sp.binomial(B, c) * p**c * (1 - p) ** (B - c) for c in range(B + 1)]))


def solve_unbiased_passk_estimator(B: int, K: int) -> list[sp.Expr] | None:
    """Find ``f(0..B)`` with ``E[f(c)] = 1 - (1-p)^K`` for every ``p``, or ``None`` if impossible.

    Matching the coefficients of ``p^0..p^max(B,K)`` gives a linear system in the
    unknown values ``f(c)``. For ``B < K`` it has no solution (the coefficient of
    ``p^K`` is ``(-1)^(K+1)`` on the right and 0 on the left); for ``B >= K`` the
    solution is unique and equals ``1 - C(B-c,K)/C(B,K)``.
    """
    if B < 0 or K < 1:
        raise ValueError(f"need B >= 0 and K >= 1, got B={B}, K={K}")
    p = sp.Symbol("p")
    f = sp.symbols(f"f0:{B + 1}")
    gap = sp.Poly(binary_estimator_expectation(f, p) - (1 - (1 - p) ** K), p)
    solution = sp.solve(gap.all_coeffs(), f, dict=True)
    if not solution:
        return None
    (sol,) = solution
    return [sp.simplify(sol[x]) for x in f]


# ---------------------------------------------------------------------------
# 4. The max@K signal and the score-function gradient
# ---------------------------------------------------------------------------

def signal_by_subsets(rewards: Sequence[Number], K: int, *, assume_sorted: bool = False) -> list[sp.Expr]:
    """The max@K signal from its definition: ``s_i = C(B,K)^-1 sum_{|S|=K, S contains i} max_S``.

    ``O(C(B,K) K)``; an exact reference, not an algorithm.
    """
    r = _group(rewards, K)
    B = len(r)
    s = [sp.Integer(0)] * B
    for subset in itertools.combinations(range(B), K):
        top = _subset_max(r, subset, assume_sorted)
        for j in subset:
            s[j] += top
    return [x / math.comb(B, K) for x in s]


def signal_closed_form(sorted_rewards: Sequence[Number], K: int) -> list[sp.Expr]:
    """``s_(i) = C(B,K)^-1 [C(i-1,K-1) r_(i) + sum_{m>i} C(m-2,K-2) r_(m)]`` for rewards in ascending order."""
    r = _group(sorted_rewards, K)
    B = len(r)
    out = []
    for i in range(1, B + 1):
        own = math.comb(i - 1, K - 1) * r[i - 1]
        above = sp.Add(*[math.comb(m - 2, K - 2) * r[m - 1] for m in range(i + 1, B + 1)]) if K >= 2 else 0
        out.append((own + above) / math.comb(B, K))
    return out


def q_values(rewards: Sequence[Number], K: int, *, assume_sorted: bool = False) -> list[sp.Expr]:
    """``Q_i``: mean over the (K-1)-subsets ``T`` of the other samples of ``max(r_i, max_T)``.

    ``Q_i`` estimates, without bias, the expected max of K rewards given that
    one of them is ``r_i``.
    """
    r = _group(rewards, K)
    B = len(r)
    out = []
    for i in range(B):
        others = [j for j in range(B) if j != i]
        subsets = list(itertools.combinations(others, K - 1))
        total = sp.Add(*[_subset_max(r, (i, *t), assume_sorted) for t in subsets])
        out.append(total / len(subsets))
    return out


def softmax_score(probs: Sequence[sp.Expr], action: int) -> list[sp.Expr]:
    """``grad_theta log softmax(theta)[action] = e_action - pi``, written in the probabilities ``pi``."""
    return [(1 if a == action else 0) - p for a, p in enumerate(probs)]


def maxk_gradient_softmax(values: Sequence[Number], probs: Sequence[sp.Expr], K: int) -> list[sp.Expr]:
    """``grad_theta J_K`` for the softmax policy ``pi = softmax(theta)``, as expressions in ``pi``.

    Chain rule: ``dJ/dtheta_j = sum_a dJ/dpi_a * pi_a (delta_aj - pi_j)``. ``J_K`` is the
    polynomial of :func:`maxk_objective`; differentiating it as a function of
    free ``pi`` is valid because ``softmax`` never leaves the simplex, where
    every extension of ``J_K`` agrees. ``probs`` must be sympy symbols.
    """
    J = maxk_objective(values, probs, K)
    dJ = [sp.diff(J, p) for p in probs]
    n = len(probs)
    scores = [softmax_score(probs, a) for a in range(n)]
    return [sp.expand(sp.Add(*[dJ[a] * probs[a] * scores[a][j] for a in range(n)])) for j in range(n)]


def expected_score_gradient(
    values: Sequence[Number],
    probs: Sequence[sp.Expr],
    B: int,
    advantages: AdvantageFn,
) -> list[sp.Expr]:
    """``E[sum_i A_i grad_theta log pi(a_i)]`` for a softmax policy, exactly, over all batches.

    ``advantages(rewards)`` maps the batch's rewards (in the batch's order) to
    one advantage per sample. Compare with :func:`maxk_gradient_softmax` to
    check an estimator's unbiasedness; the two are equal on the simplex, so
    substitute ``probs[-1] = 1 - sum(probs[:-1])`` before comparing.
    """
    n = len(values)
    grad = [sp.Integer(0)] * n
    for combo, weight, rewards in _weighted_batches(values, probs, B):
        adv = advantages(rewards)
        if len(adv) != B:
            raise ValueError(f"advantages returned {len(adv)} values for a batch of {B}")
        for a_i, action in zip(adv, combo):
            score = softmax_score(probs, action)
            for j in range(n):
                grad[j] += weight * a_i * score[j]
    return [sp.expand(g) for g in grad]
