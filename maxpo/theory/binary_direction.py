r"""With binary rewards, every reward-only estimator's expected gradient lies along :math:`\nabla p`.

Let each answer be correct with probability :math:`p = \sum_{y:\,r(y)=1}\pi(y)` and let an
estimator give sample ``i`` an advantage :math:`A_i(r_1, \dots, r_B)` that depends on the
group's rewards only. For :math:`\hat g = \sum_i A_i \nabla\log\pi(y_i)`:

.. math::

    \mathbb{E}\,\hat g = \sum_i \big(\mathbb{E}[A_i \mid r_i = 1] - \mathbb{E}[A_i \mid r_i = 0]\big)\,\nabla p ,

which is :math:`B(\mathbb{E}[A \mid 1] - \mathbb{E}[A \mid 0])\nabla p` for an estimator that
treats the samples alike. Proof: given :math:`r_i = v`, :math:`A_i` is a function of the
other samples, independent of :math:`y_i`, so
:math:`\mathbb{E}[A_i\nabla\log\pi(y_i)] = \sum_v \mathbb{E}[A_i \mid r_i = v]\,
\sum_{y:\,r(y)=v}\pi(y)\nabla\log\pi(y)`, and the inner sums are :math:`\nabla p` and
:math:`\nabla(1-p) = -\nabla p`. Since :math:`\nabla J_K = K(1-p)^{K-1}\nabla p`, the
expected gradient is *parallel* to :math:`\nabla J_K`, with the factor
:math:`B(\mathbb{E}[A\mid 1] - \mathbb{E}[A\mid 0]) / (K(1-p)^{K-1})`, which can be zero or
negative (an estimator that rewards wrong answers points *against* :math:`\nabla J_K`).

Each conditional mean is a polynomial in ``p`` of degree at most :math:`B-1` (a sum over
the other ``B - 1`` rewards of :math:`p^c(1-p)^{B-1-c}` times a number). Hence no
reward-only estimator is unbiased, even up to a constant scale, for the gradient of
:math:`\frac1\beta\log\mathbb{E}[e^{\beta r}]` (risk-seeking GRPO's objective), which is
:math:`\frac{q}{\beta(1+qp)}\nabla p` with :math:`q = e^\beta - 1 \ne 0`: that would need
:math:`(1 + qp)P(p) = \lambda` for a polynomial ``P``, and comparing coefficients forces
:math:`P = 0`, :math:`\lambda = 0` (:func:`rs_unbiased_solutions`).

:func:`check_direction` verifies the identity exactly by enumerating every batch of a
softmax categorical policy (gradients with respect to the logits).
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import sympy as sp

__all__ = ["DirectionCheck", "check_direction", "conditional_gap_polynomial", "rs_unbiased_solutions"]

Advantage = Callable[[tuple[int, ...]], Sequence[Fraction | float]]


@dataclass(frozen=True)
class DirectionCheck:
    """Exact expected gradient, the prediction :math:`\\sum_i (a_{i,1} - a_{i,0})\\nabla p`, and the factor."""

    expected: tuple[Fraction | float, ...]
    predicted: tuple[Fraction | float, ...]
    gap: Fraction | float  # sum_i (E[A_i | r_i = 1] - E[A_i | r_i = 0])
    grad_p: tuple[Fraction, ...]

    def max_error(self) -> float:
        return max(abs(float(e) - float(p)) for e, p in zip(self.expected, self.predicted))


def check_direction(probs: Sequence[Fraction | int | str], good: Sequence[int], b: int,
                    advantage: Advantage) -> DirectionCheck:
    r"""Enumerate all :math:`n^B` batches of a softmax policy over ``n`` actions.

    ``good[a]`` is the 0/1 reward of action ``a``; ``advantage`` maps the tuple of the
    group's 0/1 rewards to the advantages. Returns :math:`\mathbb{E}\hat g` (logit gradient,
    score :math:`e_a - \pi`) and the prediction from the conditional means, both exact when
    ``advantage`` returns fractions.
    """
    pi = [Fraction(p) for p in probs]
    if sum(pi) != 1 or any(p <= 0 for p in pi) or len(pi) != len(good) or any(g not in (0, 1) for g in good):
        raise ValueError("need positive probabilities summing to 1 and one 0/1 reward per action")
    n = len(pi)
    expected: list[Fraction | float] = [Fraction(0)] * n
    cond: dict[tuple[int, int], Fraction | float] = {(i, v): Fraction(0) for i in range(b) for v in (0, 1)}
    mass = {(i, v): Fraction(0) for i in range(b) for v in (0, 1)}
    for batch in itertools.product(range(n), repeat=b):
        prob = math.prod((pi[a] for a in batch), start=Fraction(1))
        rewards = tuple(good[a] for a in batch)
        adv = advantage(rewards)
        for i, a in enumerate(batch):
            for j in range(n):  # d log pi(a) / d logit_j = [a == j] - pi_j
                expected[j] += prob * adv[i] * ((1 if a == j else 0) - pi[j])
            cond[(i, rewards[i])] += prob * adv[i]
            mass[(i, rewards[i])] += prob
    gap: Fraction | float = sum((cond[(i, 1)] / mass[(i, 1)] - cond[(i, 0)] / mass[(i, 0)] for i in range(b)),
                                Fraction(0))
    p = sum((pi[a] for a in range(n) if good[a]), Fraction(0))
    grad_p = tuple(pi[a] * (good[a] - p) for a in range(n))
    return DirectionCheck(tuple(expected), tuple(gap * g for g in grad_p), gap, grad_p)


def conditional_gap_polynomial(b: int, advantage: Advantage, p: sp.Symbol) -> sp.Expr:
    r""":math:`\sum_i (\mathbb{E}[A_i \mid r_i = 1] - \mathbb{E}[A_i \mid r_i = 0])`, expanded in ``p``."""
    total = sp.Integer(0)
    for i in range(b):
        for rest in itertools.product((0, 1), repeat=b - 1):
            c = sum(rest)
            weight = p ** c * (1 - p) ** (b - 1 - c)
            for v, sign in ((1, 1), (0, -1)):
                rewards = rest[:i] + (v,) + rest[i:]
                total += sign * weight * sp.nsimplify(advantage(rewards)[i])
    return sp.expand(total)


def rs_unbiased_solutions(b: int) -> list[dict[sp.Symbol, sp.Expr]]:
    r"""All :math:`(c_0, \dots, c_{B-1}, \lambda)` with :math:`(1 + qp)\sum_j c_j p^j = \lambda` identically.

    The left side is what a reward-only estimator can reach (times :math:`1 + qp`); the right
    side is :math:`\lambda` times risk-seeking GRPO's gradient factor. sympy returns the only
    solution, all zero, for symbolic :math:`q \ne 0`.
    """
    p = sp.Symbol("p")
    q = sp.Symbol("q", nonzero=True)
    lam = sp.Symbol("lambda")
    cs = sp.symbols(f"c0:{b}")
    poly = sp.Poly(sp.expand((1 + q * p) * sum(c * p ** j for j, c in enumerate(cs)) - lam), p)
    return sp.solve(poly.all_coeffs(), [*cs, lam], dict=True)
