r"""Every L-statistic objective of ``K`` samples is a (signed) mixture of max@k, ``k <= K``.

Let :math:`X_{(1:K)} \le \dots \le X_{(K:K)}` be the order statistics of ``K`` i.i.d.
rewards. The max of a uniformly random ``k``-subset of them is :math:`X_{(j:K)}` with
probability :math:`\binom{j-1}{k-1}/\binom{K}{k}`, so

.. math:: J_k = E[\max \text{ of } k] = \sum_{j=k}^{K} M_{kj}\, E[X_{(j:K)}],\qquad
          M_{kj} = \binom{j-1}{k-1}\Big/\binom{K}{k}.

``M`` is upper triangular with diagonal :math:`1/\binom{K}{k} \ne 0`, hence invertible:
every L-statistic objective :math:`L = \sum_j a_j E[X_{(j:K)}]` equals
:math:`\sum_k w_k J_k` with :math:`w = M^{-\top} a` (:func:`mixture_weights`, exact).
Its unbiased, exactly centred MaxPO advantage is then
``maxpo.advantages(rewards, weights)`` for groups of ``B >= K + 1`` samples, batched
over groups like any mixture. Example: the minimum has
:math:`w_k = (-1)^{k+1}\binom{K}{k}` (inclusion-exclusion).

Precision: signed weights alternate and grow like :math:`\binom{K}{k}`, so float64
cancels. :func:`lstatistic_weights` refuses objectives whose weights' L1 norm
exceeds :data:`MAX_WEIGHT_NORM` and warns above :data:`WARN_WEIGHT_NORM`; the
thresholds come from :func:`precision_loss`, which measures the error of the float
advantages against exact fractions (the book's "Beyond a single K" chapter shows
the measurement).
"""
from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence
from fractions import Fraction

import sympy as sp
import torch

import maxpo

__all__ = [
    "MAX_WEIGHT_NORM",
    "NAMED",
    "WARN_WEIGHT_NORM",
    "exact_mixture_advantages",
    "lstatistic_coefficients",
    "lstatistic_weights",
    "mixture_weights",
    "precision_loss",
    "spanning_matrix",
    "spanning_proof",
]

#: Weight L1 norms above which :func:`lstatistic_weights` warns / refuses. Measured with
#: :func:`precision_loss` (2026-11-30, float64, B = K + 8, rewards uniform on [0, 1)): the
#: relative error of the advantages was 3e-15 to 3e-14 times the norm (min: K = 20, norm 1e6,
#: error 3e-9; K = 32, norm 4e9, error 1e-5; median: K = 21, norm 2.5e8, error 6e-6). Refusing
#: above 1e7 keeps the error below about 3e-7; the warning starts where it can pass 3e-10.
WARN_WEIGHT_NORM = 1e4
MAX_WEIGHT_NORM = 1e7

NAMED = ("max", "mean", "min", "top_mean", "bottom_mean", "median", "trimmed_mean")


def spanning_matrix(k_max: int) -> sp.Matrix:
    """``M[k-1, j-1] = C(j-1, k-1)/C(K, k)``: max@k as a combination of the order statistics (exact)."""
    return sp.Matrix(k_max, k_max, lambda r, c: sp.Rational(math.comb(c, r), math.comb(k_max, r + 1)))


def spanning_proof(k_max: int) -> dict[str, bool]:
    r"""Check, exactly, what makes every L-statistic a mixture of max@1..max@K.

    ``triangular``: :math:`M_{kj} = 0` for ``j < k``; ``diagonal_nonzero``; ``invertible``
    (the determinant, a product of the diagonal, is not 0); ``rows_are_maxk``: each
    row, applied to :math:`E[X_{(j:K)}]`, is :math:`J_k` -- checked on symbolic
    order statistics against the mean of the max over all ``k``-subsets of ``K``
    symbols (largest index = largest value).
    """
    m = spanning_matrix(k_max)
    x = sp.symbols(f"x1:{k_max + 1}")
    rows_ok = True
    for k in range(1, k_max + 1):
        subsets = list(itertools.combinations(range(k_max), k))
        by_subsets = sum((x[max(s)] for s in subsets), sp.Integer(0)) / len(subsets)
        rows_ok &= sp.expand(by_subsets - sum(m[k - 1, j] * x[j] for j in range(k_max))) == 0
    return {
        "triangular": all(m[r, c] == 0 for r in range(k_max) for c in range(r)),
        "diagonal_nonzero": all(m[r, r] != 0 for r in range(k_max)),
        "invertible": m.det() != 0,
        "rows_are_maxk": bool(rows_ok),
    }


def mixture_weights(coefficients: Sequence[Fraction | int | str]) -> dict[int, Fraction]:
    r"""The exact ``{k: w_k}`` with :math:`\sum_k w_k J_k = \sum_j a_j E[X_{(j:K)}]`, ``K = len(a)``.

    Solves :math:`a_j = \sum_{k \le j} w_k \binom{j-1}{k-1}/\binom{K}{k}` by forward
    substitution (the system is triangular). Zero weights are left out.
    """
    a = [Fraction(v) for v in coefficients]
    big_k = len(a)
    if big_k == 0:
        raise ValueError("an L-statistic needs at least one coefficient (K >= 1)")
    w: list[Fraction] = []
    for j in range(1, big_k + 1):
        known = sum((w[k - 1] * Fraction(math.comb(j - 1, k - 1), math.comb(big_k, k)) for k in range(1, j)),
                    Fraction(0))
        w.append((a[j - 1] - known) * math.comb(big_k, j))  # diagonal entry is 1/C(K, j)
    return {k: v for k, v in enumerate(w, start=1) if v != 0}


def lstatistic_coefficients(name: str, k: int, m: int | None = None) -> list[Fraction]:
    """Coefficients ``a_1..a_K`` on the ascending order statistics of ``K`` samples for a named objective.

    ``max``, ``mean``, ``min``; ``top_mean`` / ``bottom_mean`` (mean of the ``m`` best / worst);
    ``median`` (the middle one, or the mean of the two middle ones for even ``K``);
    ``trimmed_mean`` (mean after dropping ``m`` from each end).
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"K must be an integer >= 1, got {k!r}")
    needs_m = name in ("top_mean", "bottom_mean", "trimmed_mean")
    if needs_m and (isinstance(m, bool) or not isinstance(m, int)):
        raise ValueError(f"L-statistic {name!r} needs an integer m, got {m!r}")
    m = int(m) if needs_m else 0  # type: ignore[arg-type]
    a = [Fraction(0)] * k
    if name == "max":
        a[-1] = Fraction(1)
    elif name == "min":
        a[0] = Fraction(1)
    elif name == "mean":
        a = [Fraction(1, k)] * k
    elif name in ("top_mean", "bottom_mean"):
        if not 1 <= m <= k:
            raise ValueError(f"{name} needs 1 <= m <= K, got m = {m}, K = {k}")
        idx = range(k - m, k) if name == "top_mean" else range(m)
        for j in idx:
            a[j] = Fraction(1, m)
    elif name == "median":
        mid = [k // 2] if k % 2 else [k // 2 - 1, k // 2]
        for j in mid:
            a[j] = Fraction(1, len(mid))
    elif name == "trimmed_mean":
        if not 0 <= 2 * m < k:
            raise ValueError(f"trimmed_mean needs 0 <= 2 m < K, got m = {m}, K = {k}")
        for j in range(m, k - m):
            a[j] = Fraction(1, k - 2 * m)
    else:
        raise ValueError(f"unknown L-statistic {name!r}; choose one of: {', '.join(NAMED)}")
    return a


def lstatistic_weights(name: str, k: int, m: int | None = None) -> dict[int, float]:
    r"""The mixture ``{k': w_k'}`` (floats) of a named L-statistic of ``K`` samples, for :func:`maxpo.advantages`.

    ``maxpo.advantages(rewards, lstatistic_weights("min", 4))`` is then the unbiased,
    exactly centred advantage for :math:`E[\min \text{ of } 4]`, for every group with
    ``B >= 5`` samples, batched. Raises ``ValueError`` when the weights' L1 norm exceeds
    :data:`MAX_WEIGHT_NORM` (float64 would lose up to about ``3e-7`` relative precision,
    measured) and warns (``RuntimeWarning``) above :data:`WARN_WEIGHT_NORM`.
    """
    exact = mixture_weights(lstatistic_coefficients(name, k, m))
    norm = float(sum(abs(v) for v in exact.values()))
    if norm > MAX_WEIGHT_NORM:
        raise ValueError(f"L-statistic {name!r} of K = {k} samples needs signed max@k weights with L1 norm "
                         f"{norm:.3g} > {MAX_WEIGHT_NORM:.0e}: float64 advantages would lose up to about "
                         f"{norm * 3e-14:.0e} relative precision (measured: 3e-14 x the norm); use a smaller K")
    if norm > WARN_WEIGHT_NORM:
        warnings.warn(f"L-statistic {name!r} of K = {k}: signed weights with L1 norm {norm:.3g} cost about "
                      f"{norm * 3e-14:.0e} relative precision in float64", RuntimeWarning, stacklevel=2)
    return {kk: float(v) for kk, v in exact.items()}


def exact_mixture_advantages(rewards: Sequence[Fraction | int | float], weights: dict[int, Fraction]) -> list[Fraction]:
    r"""MaxPO mixture advantages :math:`\sum_k w_k \frac{k}{B-k}(Q^{(k)}_i - \bar Q^{(k)})` in exact fractions.

    ``Q`` from its sorted closed form with :func:`math.comb` (no torch), so large ``B``
    stays cheap (:math:`O(B^2 |w|)`); agrees with the brute-force oracle
    :func:`maxpo.reference.mixture_advantages` (tested), used as the exact side of
    :func:`precision_loss`.
    """
    r = [Fraction(v) for v in rewards]
    b = len(r)
    order = sorted(range(b), key=lambda i: r[i])
    xs = [r[i] for i in order]
    out_sorted = [Fraction(0)] * b
    for k, w in weights.items():
        norm = math.comb(b - 1, k - 1)
        q = []
        for i in range(1, b + 1):
            # ties: the first position of a run of equal values gives every member's Q
            start = next(p for p in range(1, b + 1) if xs[p - 1] == xs[i - 1])
            val = Fraction(math.comb(start - 1, k - 1), norm) * xs[start - 1]
            val += sum((Fraction(math.comb(p - 2, k - 2), norm) * xs[p - 1] for p in range(start + 1, b + 1)),
                       Fraction(0)) if k >= 2 else 0
            q.append(val)
        mean = sum(q, Fraction(0)) / b
        for i in range(b):
            out_sorted[i] += Fraction(w) * Fraction(k, b - k) * (q[i] - mean)
    out = [Fraction(0)] * b
    for pos, i in enumerate(order):
        out[i] = out_sorted[pos]
    return out


def precision_loss(name: str, k: int, b: int, m: int | None = None, groups: int = 4,
                   seed: int = 0) -> dict[str, float]:
    r"""Measured float64 error of the mixture advantages for a named L-statistic against exact fractions.

    Draws ``groups`` groups of ``b`` rewards uniform on [0, 1) (exactly representable
    floats), computes :func:`maxpo.advantages` with the float weights (no threshold
    check) and :func:`exact_mixture_advantages` with the exact weights, and returns the
    largest error relative to the largest exact advantage, with the weights' L1 norm.
    """
    exact_w = mixture_weights(lstatistic_coefficients(name, k, m))
    gen = torch.Generator().manual_seed(seed)
    r = torch.rand(groups, b, dtype=torch.float64, generator=gen)
    got = maxpo.advantages(r, {kk: float(v) for kk, v in exact_w.items()})
    worst = 0.0
    for g in range(groups):
        exact = exact_mixture_advantages([Fraction(float(v)) for v in r[g]], exact_w)
        top = max(abs(v) for v in exact)
        err = max(abs(Fraction(float(a)) - e) for a, e in zip(got[g], exact))
        worst = max(worst, float(err / top) if top else float(err))
    return {"relative_error": worst, "weight_norm": float(sum(abs(v) for v in exact_w.values()))}
