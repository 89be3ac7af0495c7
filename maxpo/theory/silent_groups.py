r"""When is a whole group silent? Exact rules for mixtures and for PKPO's uncentred estimators.

A group is *silent* for an estimator when every advantage is exactly 0. Write ``t``
for the number of rewards that tie at the top value :math:`r_{(B)}`.

**Mixtures with non-negative weights.** Let :math:`w_K \ge 0` for every ``K``, not all
zero, and let :math:`k_0` be the smallest ``K`` with :math:`w_K > 0`. Then the mixture
:math:`\sum_K w_K A^{(K)}` of MaxPO advantages is silent exactly when
:math:`t \ge B - k_0 + 1` (the zero-signal zone of :math:`k_0`). Proof: a top sample has
:math:`A^{(K)}_{\rm top} = \frac{K}{B-K}(r_{(B)} - \hat\rho_K) \ge 0` for every ``K``,
with equality iff :math:`t \ge B-K+1`. The zones grow with ``K``, so if
:math:`t \le B - k_0` the :math:`k_0` term of the top sample is positive and no other term
is negative: the mixture is not silent. If :math:`t \ge B - k_0 + 1`, every ``K`` with
:math:`w_K > 0` has :math:`K \ge k_0`, so every term is silent. With :math:`w_1 > 0` the
rule reads: silent iff all rewards are equal. Signed weights break it:
:math:`w = \{1: 1, 2: -\tfrac12\}` silences :math:`r = (0, 0, 1)` (:func:`signed_counterexample`).

**PKPO's signal and loo.** For :math:`K \le B` (signal) and :math:`K \le B-1` (loo), both
are silent exactly when the top reward is 0 *and* :math:`t \ge B-K+1`. Proof: the signal
is :math:`s_i = \frac{K}{B}Q_i` and a top sample has :math:`Q_{\rm top} = r_{(B)}`, so a
silent signal needs :math:`r_{(B)} = 0`; then every subset maximum is :math:`\le 0` and
:math:`Q_i = 0` for all ``i`` forces every ``K``-subset maximum to be 0, i.e. every
``K``-subset holds a top sample, :math:`t \ge B-K+1`. For loo, eliminating
:math:`V^{(K)}_{-i}` with :math:`\hat\rho = \frac KB Q_i + \frac{B-K}{B}V^{(K)}_{-i}` gives
:math:`A^{\rm loo}_i = \frac{K}{(B-1)(B-K)}\big(\frac{B^2-B+K}{B}Q_i - B\hat\rho\big)`; all
zero means every :math:`Q_i` equals one value ``q``, and :math:`\sum_i Q_i = B\hat\rho`
gives :math:`q = \hat\rho`, so :math:`q(K - B) = 0`, :math:`q = 0`: the signal's case.
Examples: ``(0, 0, 0)`` at any ``K``; ``(-1, 0, 0, 0)`` at ``K = 3``.

Every check here enumerates reward vectors and computes advantages with the exact
definitions of :mod:`maxpo.reference` (``fractions``); the rules above share no code
with them.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from maxpo import reference

__all__ = [
    "RuleCheck",
    "check_mixture_rule",
    "check_pkpo_rule",
    "mixture_silent_ties",
    "pkpo_silent",
    "signed_counterexample",
    "top_ties",
]

Number = int | float | Fraction


def top_ties(rewards: Sequence[Number]) -> int:
    """``t``: how many rewards equal the group maximum."""
    top = max(rewards)
    return sum(v == top for v in rewards)


def mixture_silent_ties(b: int, weights: Mapping[int, Number]) -> int:
    r"""Fewest top ties that silence :math:`\sum_K w_K A^{(K)}` for non-negative weights.

    :math:`B - k_0 + 1` with :math:`k_0 = \min\{K : w_K > 0\}`; the mixture is silent iff
    ``t >= `` this. Raises ``ValueError`` for a negative weight (no such rule: see
    :func:`signed_counterexample`), for all-zero weights, or for ``K`` outside ``1..B-1``.
    """
    if any(Fraction(w) < 0 for w in weights.values()):
        raise ValueError(f"the rule needs every weight >= 0; got {dict(weights)}")
    used = [k for k, w in weights.items() if Fraction(w) != 0]
    if not used:
        raise ValueError("need at least one non-zero weight")
    if any(not 1 <= k <= b - 1 for k in used):
        raise ValueError(f"MaxPO needs 1 <= K <= B-1 = {b - 1}; got K in {sorted(used)}")
    return b - min(used) + 1


def pkpo_silent(rewards: Sequence[Number], k: int) -> bool:
    """True iff PKPO's signal (and its loo estimator) is all zero: top reward 0 and ``t >= B-K+1``."""
    return max(rewards) == 0 and top_ties(rewards) >= len(rewards) - k + 1


def signed_counterexample() -> list[Fraction]:
    r"""Exact advantages of :math:`w = \{1: 1, 2: -\tfrac12\}` at :math:`r = (0, 0, 1)`: all zero."""
    return reference.mixture_advantages([0, 0, 1], {1: Fraction(1), 2: Fraction(-1, 2)}, "maxpo")


@dataclass
class RuleCheck:
    """Outcome of an exhaustive check: cases enumerated, silent cases among them, disagreements."""

    cases: int = 0
    silent: int = 0
    failures: list[tuple] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.cases > 0 and not self.failures


def _vectors(values: Iterable[Number], b: int, ordered: bool) -> Iterable[tuple[Fraction, ...]]:
    vals = [Fraction(v) for v in values]
    return itertools.product(vals, repeat=b) if ordered else itertools.combinations_with_replacement(vals, b)


def check_mixture_rule(b_max: int, values: Sequence[Number] = (0, Fraction(1, 2), 1),
                       weight_values: Sequence[Number] = (0, Fraction(1, 2), 1), ordered: bool = True) -> RuleCheck:
    """Every ``B <= b_max``, reward vector in ``values^B`` and non-zero weight vector in
    ``weight_values^(B-1)``: is the exact mixture silent iff ``t >= mixture_silent_ties``?

    ``ordered=False`` visits each multiset of rewards once (the definitions are symmetric
    in the samples, so the order cannot change silence).
    """
    out = RuleCheck()
    for b in range(2, b_max + 1):
        weight_vectors = [w for w in itertools.product([Fraction(v) for v in weight_values], repeat=b - 1) if any(w)]
        for r in _vectors(values, b, ordered):
            per_k = {k: reference.advantages(list(r), k, "maxpo") for k in range(1, b)}
            t = top_ties(r)
            for w in weight_vectors:
                mix = [sum((w[k - 1] * Fraction(per_k[k][i]) for k in range(1, b)), Fraction(0)) for i in range(b)]
                silent = all(v == 0 for v in mix)
                predicted = t >= mixture_silent_ties(b, {k: w[k - 1] for k in range(1, b)})
                out.cases += 1
                out.silent += silent
                if silent != predicted:
                    out.failures.append((r, w))
    return out


def check_pkpo_rule(b_max: int, values: Sequence[Number] = (-1, Fraction(-1, 2), 0, Fraction(1, 2), 1),
                    ordered: bool = False) -> RuleCheck:
    """Every ``B <= b_max``, ``K`` and reward vector in ``values^B``: are ``pkpo_s`` (``K <= B``)
    and ``pkpo_loo`` (``K <= B-1``) all zero exactly when :func:`pkpo_silent` says so?"""
    out = RuleCheck()
    for b in range(2, b_max + 1):
        for r in _vectors(values, b, ordered):
            for k in range(1, b + 1):
                for method in ("pkpo_s", "pkpo_loo") if k < b else ("pkpo_s",):
                    silent = all(v == 0 for v in reference.advantages(list(r), k, method))
                    out.cases += 1
                    out.silent += silent
                    if silent != pkpo_silent(r, k):
                        out.failures.append((method, r, k))
    return out
