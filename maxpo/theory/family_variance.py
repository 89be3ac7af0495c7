r"""The variance-optimal shift and λ of the loo-1/MaxPO family, exactly, in fractions.

Setting: a categorical policy whose action :math:`a` has reward :math:`r_a` and
score vector :math:`s_a = \nabla_\theta\log\pi_\theta(a)`. By default the scores are
the softmax's, :math:`s_a = e_a - \pi`; any vectors with :math:`\sum_a \pi_a s_a = 0`
may be passed instead (they are the scores at :math:`\theta = 0` of the tilted
policy :math:`\pi_\theta(a) \propto \pi_a e^{\theta\cdot s_a}`), which lets a check
choose how score norms relate to rewards. Every batch of :math:`B` samples is
enumerated with its exact probability; advantages come from
:func:`maxpo.reference.advantages`.

**Optimal constant shift.** For :math:`A_i = A^{\text{loo-1}}_i - c`, with
:math:`g_0 = \sum_i A^{\text{loo-1}}_i S_i` and :math:`S = \sum_i S_i`,
:math:`\mathrm{tr\,Var}(g_0 - cS) = \mathrm{tr\,Var}\,g_0 - 2c\,E\langle g_0, S\rangle + c^2 E\|S\|^2`
(:math:`E S = 0`), minimised at

.. math:: c^\star = E\langle g_0, S\rangle / E\|S\|^2 .

Write :math:`n(r) = E[\|S_1\|^2 \mid r_1 = r]`, :math:`m(r) = E[S_1 \mid r_1 = r]` and
:math:`\delta = E A^{\text{loo-1}}_1 = \frac{K}{B}(J_K - J_{K-1})`. The advantages are
functions of the rewards and, given all rewards, the samples' scores are independent
with means :math:`m(r_i)`, so (exactly)

.. math::
   c^\star - \delta = \frac{\tfrac{K}{B}\,\mathrm{Cov}\bigl(A_K(y), n(r_y)\bigr)
   + (B-1)\,E\bigl[A^{\text{loo-1}}_1 \langle m(r_1), m(r_2)\rangle\bigr]}{E\,n(r)},

with :math:`A_K(y) = Q_K(y) - J_K` the true max@K advantage. **Assumption** under
which :math:`c^\star = \delta`: (i) the score norm does not vary with the reward
in mean, :math:`n(r)` constant (kills the *norm term*), and (ii) distinct samples'
scores are uncorrelated given the rewards, :math:`\langle m(r), m(r')\rangle = 0`
(kills the *cross term*). (ii) holds exactly only where the policy gradient is 0,
but the cross term is small when the per-sample score is mostly noise,
:math:`\|m(r)\|^2 \ll n(r)`, as in a high-dimensional model; (i) is what a language
model can break (answers of different lengths and probabilities have different
score norms), and then the best shift is not δ and MaxPO's subtraction of an
estimate of δ can raise the variance.

**Optimal λ.** :math:`g(\lambda) = (1-\lambda)g_a + \lambda g_b = g_a + \lambda e`
(:math:`g_a` loo-1's, :math:`g_b` MaxPO's, :math:`e = g_b - g_a`):
:math:`\mathrm{tr\,Var}\,g(\lambda) = v_0 + 2\lambda v_1 + \lambda^2 v_2`,
:math:`\lambda^\star = -v_1/v_2 = \mathrm{tr\,Cov}(g_a, -e)/\mathrm{tr\,Var}\,e`. With
MaxPO ≈ loo-1 minus :math:`\bar d S` (the book's bandit chapter) and :math:`\bar d`
treated as independent, :math:`\lambda^\star \approx (c^\star/\delta)\,\rho^2/(1+\rho^2)`,
:math:`\rho = \delta/\mathrm{sd}(\bar d)`: near 1 only when the assumption holds
and the offset is large against its noise.
"""
from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import NamedTuple

from maxpo import reference
from maxpo.theory.unified_view import CategoricalPolicy

__all__ = [
    "ShiftDecomposition",
    "best_constant_shift",
    "family_parabola",
    "family_variance",
    "loo1_offset",
    "optimal_family_lambda",
    "shift_decomposition",
    "softmax_scores",
]

Vector = list[Fraction]
Scores = Sequence[Sequence[Fraction | int | str]]


def softmax_scores(policy: CategoricalPolicy) -> list[Vector]:
    r"""The softmax policy's scores with respect to its logits, :math:`s_a = e_a - \pi`."""
    p = policy.probs
    return [[Fraction(int(a == c)) - p[c] for c in range(len(p))] for a in range(len(p))]


def _scores(policy: CategoricalPolicy, scores: Scores | None) -> list[Vector]:
    if scores is None:
        return softmax_scores(policy)
    s = [[Fraction(x) for x in row] for row in scores]
    if len(s) != policy.n_actions or len({len(row) for row in s}) != 1 or not s[0]:
        raise ValueError(f"need one score vector of a common length >= 1 per action ({policy.n_actions})")
    mean = [sum((p * row[c] for p, row in zip(policy.probs, s, strict=True)), Fraction(0)) for c in range(len(s[0]))]
    if any(mean):
        raise ValueError(f"score vectors must have mean zero under the policy (E[S] = 0), got E[S] = {mean}")
    return s


def _dot(u: Vector, v: Vector) -> Fraction:
    return sum((x * y for x, y in zip(u, v, strict=True)), Fraction(0))


def _rows(policy: CategoricalPolicy, b: int, k: int,
          scores: list[Vector]) -> list[tuple[Fraction, Vector, Vector, Vector]]:
    """(probability, g_loo1, g_maxpo, S) for every batch."""
    d = len(scores[0])
    out = []
    for actions, prob, rewards in reference.enumerate_batches(policy.probs, policy.rewards, b):
        a1 = [Fraction(x) for x in reference.advantages(rewards, k, "pkpo_loo1")]
        a2 = [Fraction(x) for x in reference.advantages(rewards, k, "maxpo")]
        g1 = [sum((a1[i] * scores[a][c] for i, a in enumerate(actions)), Fraction(0)) for c in range(d)]
        g2 = [sum((a2[i] * scores[a][c] for i, a in enumerate(actions)), Fraction(0)) for c in range(d)]
        s = [sum((scores[a][c] for a in actions), Fraction(0)) for c in range(d)]
        out.append((prob, g1, g2, s))
    return out


def _trace_cov(rows: list[tuple[Fraction, Vector, Vector]]) -> Fraction:
    """tr Cov(x, y) for rows (probability, x, y)."""
    d = len(rows[0][1])
    mx = [sum((w * x[c] for w, x, _ in rows), Fraction(0)) for c in range(d)]
    my = [sum((w * y[c] for w, _, y in rows), Fraction(0)) for c in range(d)]
    return sum((w * sum((x[c] - mx[c]) * (y[c] - my[c]) for c in range(d)) for w, x, y in rows), Fraction(0))


def family_variance(policy: CategoricalPolicy, b: int, k: int, lam: Fraction | int,
                    scores: Scores | None = None) -> Fraction:
    r""":math:`\mathrm{tr\,Var}\,g(\lambda)` directly, from the advantages :math:`A(\lambda)` of every batch."""
    lam = Fraction(lam)
    rows = _rows(policy, b, k, _scores(policy, scores))
    g = [(w, [(1 - lam) * x + lam * y for x, y in zip(g1, g2, strict=True)]) for w, g1, g2, _ in rows]
    return _trace_cov([(w, v, v) for w, v in g])


def family_parabola(policy: CategoricalPolicy, b: int, k: int,
                    scores: Scores | None = None) -> tuple[Fraction, Fraction, Fraction]:
    r"""``(v0, v1, v2)`` with :math:`\mathrm{tr\,Var}\,g(\lambda) = v_0 + 2\lambda v_1 + \lambda^2 v_2`.

    The convention of :func:`maxpo.variance_quadratic`:

    :math:`v_0 = \mathrm{tr\,Var}\,g_a`, :math:`v_1 = \mathrm{tr\,Cov}(g_a, e)`,
    :math:`v_2 = \mathrm{tr\,Var}\,e`, :math:`e = g_b - g_a` (loo-1 = a, MaxPO = b).
    """
    rows = _rows(policy, b, k, _scores(policy, scores))
    ga = [(w, g1) for w, g1, _, _ in rows]
    e = [(w, [y - x for x, y in zip(g1, g2, strict=True)]) for w, g1, g2, _ in rows]
    v0 = _trace_cov([(w, x, x) for w, x in ga])
    v1 = _trace_cov([(w, x, y) for (w, x), (_, y) in zip(ga, e, strict=True)])
    v2 = _trace_cov([(w, y, y) for w, y in e])
    return v0, v1, v2


def optimal_family_lambda(policy: CategoricalPolicy, b: int, k: int,
                          scores: Scores | None = None) -> Fraction:
    r""":math:`\lambda^\star = -v_1/v_2`, the member of the family with the least total variance."""
    _, v1, v2 = family_parabola(policy, b, k, scores)
    return -v1 / v2


def loo1_offset(policy: CategoricalPolicy, b: int, k: int) -> Fraction:
    r"""Loo-1's offset :math:`\delta = \frac{K}{B}(J_K - J_{K-1})` (the mean of one loo-1 advantage)."""
    return Fraction(k, b) * (policy.objective(k) - policy.objective(k - 1))


def best_constant_shift(policy: CategoricalPolicy, b: int, k: int,
                        scores: Scores | None = None) -> Fraction:
    r""":math:`c^\star = E\langle g_0, S\rangle / E\|S\|^2` for :math:`A = A^{\text{loo-1}} - c`, from the batches."""
    rows = _rows(policy, b, k, _scores(policy, scores))
    num = sum((w * _dot(g1, s) for w, g1, _, s in rows), Fraction(0))
    den = sum((w * _dot(s, s) for w, _, _, s in rows), Fraction(0))
    return num / den


class ShiftDecomposition(NamedTuple):
    r""":math:`c^\star = \delta + \text{norm} + \text{cross}` (see the module docstring)."""

    c_star: Fraction
    delta: Fraction
    norm_term: Fraction
    cross_term: Fraction


def shift_decomposition(policy: CategoricalPolicy, b: int, k: int,
                        scores: Scores | None = None) -> ShiftDecomposition:
    r"""The best constant shift of loo-1 and its two departures from δ, each computed on its own route.

    ``c_star`` from the batches' gradients (:func:`best_constant_shift`); ``delta`` from
    the objective; ``norm_term`` :math:`= \frac{K}{B}\sum_a \pi_a A_K(a)\,n(r_a) / E n`
    from the true advantage and the conditional score norms; ``cross_term``
    :math:`= (B-1)E[A^{\text{loo-1}}_1\langle m(r_1), m(r_2)\rangle]/E n` from the batches'
    first two samples. The identity ``c_star == delta + norm_term + cross_term`` is
    exact (tested).
    """
    s = _scores(policy, scores)
    p, r = policy.probs, policy.rewards
    values = sorted(set(r))
    prob_r = {v: sum((p[a] for a in range(len(p)) if r[a] == v), Fraction(0)) for v in values}
    n_r = {v: sum((p[a] * _dot(s[a], s[a]) for a in range(len(p)) if r[a] == v), Fraction(0)) / prob_r[v]
           for v in values}
    d = len(s[0])
    m_r = {v: [sum((p[a] * s[a][c] for a in range(len(p)) if r[a] == v), Fraction(0)) / prob_r[v] for c in range(d)]
           for v in values}
    e_n = sum((p[a] * _dot(s[a], s[a]) for a in range(len(p))), Fraction(0))
    true_adv = policy.true_advantage(k)
    norm = Fraction(k, b) * sum((p[a] * true_adv[a] * n_r[r[a]] for a in range(len(p))), Fraction(0)) / e_n
    cross = Fraction(0)
    for _, prob, rewards in reference.enumerate_batches(p, r, b):
        a1 = Fraction(reference.advantages(rewards, k, "pkpo_loo1")[0])
        cross += prob * a1 * _dot(m_r[rewards[0]], m_r[rewards[1]])
    cross = (b - 1) * cross / e_n
    return ShiftDecomposition(best_constant_shift(policy, b, k, s), loo1_offset(policy, b, k), norm, cross)
