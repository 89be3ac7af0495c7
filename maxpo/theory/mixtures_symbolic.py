r"""Exact proofs about mixtures of max@K objectives: MaxRL is a harmonic mixture of MaxPO.

MaxRL (Tajwar et al. 2026, arXiv 2602.02710) gives, for binary rewards with ``c``
correct answers among ``B``, :math:`A_i = (r_i - \bar r)/(B \bar r)` (0 when
``c = 0``): :math:`(B-c)/(Bc)` to a correct answer and :math:`-1/B` to a wrong one.
MaxPO at ``K`` gives a correct answer
:math:`A^{(K)}_+ = \frac{K}{B-K}(1 - \hat\rho_K) = \frac{K}{B-K}\binom{B-c}{K}/\binom{B}{K}`
(its ``Q`` is 1 and :math:`\hat\rho_K = 1 - \binom{B-c}{K}/\binom{B}{K}`), and a wrong one
:math:`A^{(K)}_- = \frac{K}{B-K}(Q_- - \hat\rho_K)` with
:math:`Q_- = 1 - \binom{B-1-c}{K-1}/\binom{B-1}{K-1}`.

The claim: :math:`A^{\rm MaxRL} = \sum_{K=1}^{B-1} \frac1K A^{(K)}` for every ``B >= 2`` and
``0 <= c <= B``. Two proofs, both in sympy:

* :func:`identity_at` -- at one ``B``, symbolic in ``c``: with the binomials of ``c``
  written as polynomials (falling factorials), ``c`` times the correct-answer sum minus
  :math:`(B-c)/B` is the polynomial :math:`\frac{(-1)^{B+1}}{B!}\prod_{j=1}^{B}(c-j)`, and the
  wrong-answer sum plus :math:`1/B` is :math:`\frac{(-1)^{B-1}}{B!}\prod_{j=1}^{B-1}(c-j)`;
  both vanish at every integer ``1 <= c <= B - 1``. The ends ``c = 0`` and ``c = B`` are
  evaluated directly.
* :func:`general_proof` -- for symbolic ``B``, ``c`` and ``K``, a chain of lemmas each
  checked by sympy: the binomial swap
  :math:`\binom{B-c}{K}/\binom{B}{K} = \binom{B-K}{c}/\binom{B}{c}`, absorption
  :math:`\binom{m}{c}/m = \binom{m-1}{c-1}/c`, the hockey stick
  :math:`\sum_{m=c}^{B-1}\binom{m-1}{c-1} = \binom{B-1}{c}` (by induction,
  :func:`maxpo.theory.symbolic.hockey_stick_by_induction`) and
  :math:`\binom{B-1}{c}/(c\binom{B}{c}) = (B-c)/(Bc)`; wrong answers follow from exact
  centring of both sides (:func:`centring_transfers`).

:func:`mixture_unbiased_by_enumeration` checks, for real-valued rewards and any weights,
that the weighted MaxPO advantages are exactly centred in every batch and unbiased
for :math:`\sum_K w_K \nabla J_K`, by enumerating a categorical policy with fractions.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import sympy as sp

from maxpo import reference
from maxpo.theory.symbolic import hockey_stick_by_induction

__all__ = [
    "GeneralProof",
    "IdentityAtB",
    "centring_transfers",
    "general_proof",
    "identity_at",
    "maxpo_binary_advantages",
    "maxrl_binary_advantages",
    "mixture_unbiased_by_enumeration",
]


def _falling_binomial(n: sp.Expr, k: int) -> sp.Expr:
    """``C(n, k)`` for an integer ``k >= 0`` as a polynomial in ``n`` (equal to it at every integer ``n >= 0``)."""
    return sp.Mul(*[n - j for j in range(k)]) / sp.factorial(k)


def maxpo_binary_advantages(b: int, k: int, c: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """MaxPO's (correct, wrong) advantages at ``(B, K)`` with ``c`` correct, as polynomials in ``c``.

    ``K/(B-K) (Q - rho)`` with ``Q = 1`` (correct), ``Q = 1 - C(B-1-c, K-1)/C(B-1, K-1)`` (wrong)
    and ``rho = 1 - C(B-c, K)/C(B, K)``; valid at integers ``0 <= c <= B``.
    """
    rho = 1 - _falling_binomial(b - c, k) / math.comb(b, k)
    q_wrong = 1 - _falling_binomial(b - 1 - c, k - 1) / math.comb(b - 1, k - 1)
    scale = sp.Rational(k, b - k)
    return sp.expand(scale * (1 - rho)), sp.expand(scale * (q_wrong - rho))


def maxrl_binary_advantages(b: int, c: int) -> tuple[sp.Rational, sp.Rational]:
    """MaxRL's (correct, wrong) advantages ``(r - rbar)/(B rbar)``, 0 when ``c = 0``."""
    if c == 0:
        return sp.Integer(0), sp.Integer(0)
    rbar = sp.Rational(c, b)
    return (1 - rbar) / (b * rbar), -rbar / (b * rbar)


@dataclass(frozen=True)
class IdentityAtB:
    """The MaxRL identity at one ``B``: residual polynomials in ``c`` and the two ends."""

    b: int
    correct_residual: sp.Expr  # c * sum_K (1/K) A+_K - (B-c)/B - (-1)^(B+1)/B! prod_{j=1..B} (c-j)
    wrong_residual: sp.Expr  # sum_K (1/K) A-_K + 1/B - (-1)^(B-1)/B! prod_{j=1..B-1} (c-j)
    ends_agree: bool  # c = 0 and c = B evaluated directly

    @property
    def holds(self) -> bool:
        return self.correct_residual == 0 and self.wrong_residual == 0 and self.ends_agree


def identity_at(b: int) -> IdentityAtB:
    r"""Prove :math:`A^{\rm MaxRL} = \sum_{K=1}^{B-1} \frac1K A^{(K)}_{\rm MaxPO}` at one ``B >= 2``, symbolic in ``c``.

    The correct-answer mixture :math:`S_+(c)` and wrong-answer mixture :math:`S_-(c)` are
    polynomials in ``c`` (degrees ``B - 1``). The claim is :math:`c S_+(c) = (B-c)/B` and
    :math:`S_-(c) = -1/B` at ``c = 1..B-1``; each residual polynomial has degree at most ``B``
    (resp. ``B - 1``) and those roots, so it is the stated multiple of
    :math:`\prod (c - j)`; sympy checks that the difference expands to zero.
    """
    if b < 2:
        raise ValueError(f"the identity needs B >= 2 (MaxPO needs K <= B - 1), got B = {b}")
    c = sp.Symbol("c")
    pos = sp.Integer(0)
    neg = sp.Integer(0)
    for k in range(1, b):
        a_pos, a_neg = maxpo_binary_advantages(b, k, c)
        pos += a_pos / k
        neg += a_neg / k
    sign = sp.Integer(-1) ** (b + 1) / sp.factorial(b)
    correct = sp.expand(c * pos - (b - c) / sp.Integer(b) - sign * sp.Mul(*[c - j for j in range(1, b + 1)]))
    wrong = sp.expand(neg + sp.Rational(1, b) - sign * sp.Mul(*[c - j for j in range(1, b)]))
    # ends: c = 0 (no correct answer: only wrong samples, all advantages 0) and c = B (only correct ones)
    ends = neg.subs(c, 0) == maxrl_binary_advantages(b, 0)[1] and \
        pos.subs(c, b) == maxrl_binary_advantages(b, b)[0]
    return IdentityAtB(b=b, correct_residual=correct, wrong_residual=wrong, ends_agree=bool(ends))


@dataclass(frozen=True)
class GeneralProof:
    """Each lemma's residual (0 when sympy proves it) for symbolic ``B``, ``c``, ``K``, ``m``."""

    binomial_swap: sp.Expr  # C(B-c,K)/C(B,K) / (C(B-K,c)/C(B,c)) - 1
    term_rewrite: sp.Expr  # (1/K) K/(B-K) C(B-K,c)/C(B,c) - C(m,c)/(m C(B,c)) at m = B - K
    absorption: sp.Expr  # C(m,c)/m / (C(m-1,c-1)/c) - 1
    hockey_stick_base: sp.Expr
    hockey_stick_step: sp.Expr
    final_ratio: sp.Expr  # C(B-1,c)/(c C(B,c)) - (B-c)/(B c)
    maxrl_correct: sp.Expr  # (1 - c/B)/(B c/B) - (B-c)/(B c)

    @property
    def holds(self) -> bool:
        return all(v == 0 for v in (self.binomial_swap, self.term_rewrite, self.absorption,
                                    self.hockey_stick_base, self.hockey_stick_step, self.final_ratio,
                                    self.maxrl_correct))


def general_proof() -> GeneralProof:
    r"""The MaxRL identity for a correct answer, for symbolic ``B`` and ``1 <= c <= B - 1``.

    .. math::
        \sum_{K=1}^{B-1}\frac1K\frac{K}{B-K}\frac{\binom{B-c}{K}}{\binom{B}{K}}
        = \sum_{K=1}^{B-1}\frac{\binom{B-K}{c}}{(B-K)\binom{B}{c}}
        = \frac{1}{\binom{B}{c}}\sum_{m=1}^{B-1}\frac{\binom{m}{c}}{m}
        = \frac{1}{c\binom{B}{c}}\sum_{m=c}^{B-1}\binom{m-1}{c-1}
        = \frac{\binom{B-1}{c}}{c\binom{B}{c}} = \frac{B-c}{Bc}.

    Terms with ``m < c`` vanish (``C(m, c) = 0``), and both sides of the swap vanish when
    ``K > B - c``; the gamma-function checks cover the remaining terms. Every step's residual is returned;
    the hockey stick comes from :func:`maxpo.theory.symbolic.hockey_stick_by_induction` with
    ``(B, K) -> (B - 1, c)``. Wrong answers: :func:`centring_transfers`.
    """
    b, c, k, m = sp.symbols("B c K m", integer=True, positive=True)

    def ratio_minus_one(num: sp.Expr, den: sp.Expr) -> sp.Expr:
        return sp.simplify(sp.combsimp(num / den) - 1)

    swap = ratio_minus_one(sp.binomial(b - c, k) / sp.binomial(b, k), sp.binomial(b - k, c) / sp.binomial(b, c))
    term = sp.simplify((1 / k) * k / (b - k) * sp.binomial(b - k, c) / sp.binomial(b, c)
                       - (sp.binomial(m, c) / (m * sp.binomial(b, c))).subs(m, b - k))
    absorb = ratio_minus_one(sp.binomial(m, c) / m, sp.binomial(m - 1, c - 1) / c)
    hockey = hockey_stick_by_induction(b - 1, c)
    final = sp.simplify(sp.combsimp(sp.binomial(b - 1, c) / (c * sp.binomial(b, c))) - (b - c) / (b * c))
    rbar = c / b
    maxrl = sp.simplify((1 - rbar) / (b * rbar) - (b - c) / (b * c))
    return GeneralProof(binomial_swap=swap, term_rewrite=term, absorption=absorb,
                        hockey_stick_base=hockey.base, hockey_stick_step=hockey.step,
                        final_ratio=final, maxrl_correct=maxrl)


def centring_transfers() -> sp.Expr:
    r"""Wrong answers follow from correct ones when both vectors sum to zero.

    An exactly centred binary advantage with ``c`` correct answers has
    :math:`c A_+ + (B-c) A_- = 0`, so :math:`A_- = -\frac{c}{B-c} A_+`: two centred vectors
    (MaxRL, and the MaxPO mixture, centred term by term) that agree on correct answers
    agree everywhere. Returns MaxRL's :math:`A_- + \frac{c}{B-c} A_+` for symbolic
    ``B``, ``c`` (0: MaxRL is centred).
    """
    b, c = sp.symbols("B c", integer=True, positive=True)
    rbar = c / b
    a_pos, a_neg = (1 - rbar) / (b * rbar), (0 - rbar) / (b * rbar)
    return sp.simplify(a_neg + c / (b - c) * a_pos)


def mixture_unbiased_by_enumeration(probs: Sequence[Fraction | int | str],
                                    action_rewards: Sequence[Fraction | int | str], b: int,
                                    weights: Mapping[int, Fraction | int | str]) -> dict[str, bool]:
    r"""Exact check that :math:`\sum_K w_K A^{(K)}_{\rm MaxPO}` is centred and unbiased for
    :math:`\sum_K w_K \nabla J_K`.

    Enumerates every ``B``-tuple of actions of the categorical policy (rewards may be any
    rationals, not only 0/1), with the advantages from their Leave-Two-Out definition
    (:mod:`maxpo.reference`). Returns ``{"centred": ..., "unbiased": ...}``.
    """
    p = [Fraction(v) for v in probs]
    r = [Fraction(v) for v in action_rewards]
    w = {int(k): Fraction(v) for k, v in weights.items()}
    batches = reference.enumerate_batches(p, r, b)
    rows = [reference.mixture_advantages(rew, w, "maxpo") for _, _, rew in batches]
    return {
        "centred": all(sum(row, Fraction(0)) == 0 for row in rows),
        "unbiased": reference.expected_gradient(p, batches, rows) == reference.mixture_objective_gradient(p, r, w),
    }
