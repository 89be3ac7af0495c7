r"""Paired bootstrap confidence intervals for differences between methods.

Every method of a comparison is evaluated on the same held-out puzzles, and
for a given seed on the same prompts and random numbers, so differences are
measured *paired*: a resample draws seeds and puzzles (with replacement) once
and uses the same draw for both methods. For per-seed, per-puzzle values
:math:`a_{sp}`, :math:`b_{sp}` (``S`` seeds x ``P`` puzzles) one resample's
statistic is

.. math::  \bar d^* = \frac1{SP} \sum_{s \in S^*} \sum_{p \in P^*} (a_{sp} - b_{sp}),

and the interval is the ``(1 - level)/2`` and ``(1 + level)/2`` quantiles of
:math:`\bar d^*` (percentile bootstrap). Both sources of noise, the RL run
(seed) and the finite evaluation set (puzzle), enter the interval.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["paired_bootstrap_ci", "passk_per_puzzle"]


def passk_per_puzzle(correct_counts: list[int], n: int, k: int) -> np.ndarray:
    """Unbiased pass@k of each puzzle from its count of correct answers among ``n``: ``1 - C(n-c, k) / C(n, k)``."""
    if not 1 <= k <= n:
        raise ValueError(f"pass@k needs 1 <= k <= n, got k={k}, n={n}")
    total = math.comb(n, k)
    return np.array([1.0 - math.comb(n - c, k) / total for c in correct_counts])


def paired_bootstrap_ci(
    a: np.ndarray, b: np.ndarray, n_boot: int = 4000, level: float = 0.95, seed: int = 0
) -> dict[str, float]:
    """Mean difference ``a - b`` and its paired percentile-bootstrap interval (see the module docstring).

    Args:
        a, b: ``(S, P)`` values of two methods for the same seeds (rows) and puzzles (columns).

    Returns:
        ``{"diff", "lo", "hi", "level", "n_boot"}``.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or 0 in a.shape:
        raise ValueError(f"need two (seeds, puzzles) arrays of the same non-empty shape, got {a.shape} and {b.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    d = a - b
    s, p = d.shape
    rng = np.random.default_rng(seed)
    # sum over resampled puzzles through per-puzzle multiplicities, then over resampled seeds
    stats = np.empty(n_boot)
    for i in range(n_boot):
        rows = rng.integers(0, s, size=s)
        weights = np.bincount(rng.integers(0, p, size=p), minlength=p)
        stats[i] = (d[rows] @ weights).sum() / (s * p)
    lo, hi = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return {"diff": float(d.mean()), "lo": float(lo), "hi": float(hi), "level": level, "n_boot": n_boot}
