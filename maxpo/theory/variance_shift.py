r"""The variance-optimal constant shift of an advantage, exactly, in fractions.

Adding the same constant :math:`\delta` to every advantage of a group changes the
gradient estimate to :math:`\hat g_\delta = \hat g + \delta S`, with
:math:`S = \sum_i \nabla\log\pi(y_i)` the summed score. Because :math:`E[S] = 0`,

.. math::
   \mathrm{tr\,Var}(\hat g_\delta) = v_0 + 2 v_1 \delta + v_2 \delta^2,\quad
   v_0 = \mathrm{tr\,Var}(\hat g),\ v_1 = E\langle \hat g, S\rangle,\
   v_2 = E\|S\|^2 = B\, E\|\nabla\log\pi(y)\|^2,

a parabola with its minimum at :math:`\delta^\star = -v_1 / v_2`. For a softmax
policy over a few actions (:class:`maxpo.theory.unified_view.CategoricalPolicy`) every batch
is enumerated with its exact probability and every advantage comes from its
definition (:func:`maxpo.reference.advantages`), so all three coefficients are
rationals. :func:`shifted_total_variance` computes the variance of the shifted
estimator directly, for checking the expansion.
"""
from __future__ import annotations

from fractions import Fraction

from maxpo import reference
from maxpo.theory.unified_view import CategoricalPolicy

__all__ = ["shift_parabola", "shifted_total_variance", "optimal_shift", "score_norm_mean"]


def _estimates(policy: CategoricalPolicy, b: int, k: int, method: str, shift: Fraction):
    """(probability, g, S) for every batch: g = sum_i (A_i + shift) grad log pi(y_i)."""
    p, n = policy.probs, policy.n_actions
    out = []
    for actions, prob, rewards in reference.enumerate_batches(p, policy.rewards, b):
        adv = [Fraction(a) + shift for a in reference.advantages(rewards, k, method)]
        score = [[Fraction(int(a == c)) - p[c] for c in range(n)] for a in actions]
        g = [sum((adv[i] * score[i][c] for i in range(b)), Fraction(0)) for c in range(n)]
        s = [sum((score[i][c] for i in range(b)), Fraction(0)) for c in range(n)]
        out.append((prob, g, s))
    return out


def shifted_total_variance(policy: CategoricalPolicy, b: int, k: int, method: str,
                           shift: Fraction | int = 0) -> Fraction:
    r""":math:`E\|\hat g_\delta - E\hat g_\delta\|^2` with every advantage shifted by ``shift``, directly."""
    rows = _estimates(policy, b, k, method, Fraction(shift))
    n = policy.n_actions
    mean = [sum((w * g[c] for w, g, _ in rows), Fraction(0)) for c in range(n)]
    return sum((w * sum((g[c] - mean[c]) ** 2 for c in range(n)) for w, g, _ in rows), Fraction(0))


def shift_parabola(policy: CategoricalPolicy, b: int, k: int,
                   method: str = "maxpo") -> tuple[Fraction, Fraction, Fraction]:
    r"""``(v0, v1, v2)`` with :math:`\mathrm{tr\,Var}(\hat g + \delta S) = v_0 + 2 v_1\delta + v_2\delta^2`."""
    rows = _estimates(policy, b, k, method, Fraction(0))
    n = policy.n_actions
    mean = [sum((w * g[c] for w, g, _ in rows), Fraction(0)) for c in range(n)]
    v0 = sum((w * sum((g[c] - mean[c]) ** 2 for c in range(n)) for w, g, _ in rows), Fraction(0))
    v1 = sum((w * sum(g[c] * s[c] for c in range(n)) for w, g, s in rows), Fraction(0))
    v2 = sum((w * sum(s[c] ** 2 for c in range(n)) for w, _, s in rows), Fraction(0))
    return v0, v1, v2


def optimal_shift(policy: CategoricalPolicy, b: int, k: int, method: str = "maxpo") -> Fraction:
    r""":math:`\delta^\star = -v_1 / v_2`, the constant that minimises the total variance."""
    _, v1, v2 = shift_parabola(policy, b, k, method)
    return -v1 / v2


def score_norm_mean(policy: CategoricalPolicy) -> Fraction:
    r""":math:`E\|\nabla\log\pi(y)\|^2 = \sum_a \pi_a \|e_a - \pi\|^2 = 1 - \sum_a \pi_a^2` for a softmax policy."""
    p = policy.probs
    return 1 - sum((q * q for q in p), Fraction(0))
