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

**Power.** To say what size of comparison would resolve a difference, the
paired differences :math:`d_{sp}` are modelled as seed and puzzle effects plus
noise, :math:`d_{sp} = \mu + \alpha_s + \beta_p + \varepsilon_{sp}` (crossed random
effects, one observation per cell). The ANOVA mean squares give unbiased
estimates of the three variances (:func:`variance_components`), then the standard
error of the mean difference with ``S`` seeds and ``P`` puzzles is
:math:`\sqrt{\sigma_\alpha^2/S + \sigma_\beta^2/P + \sigma_\varepsilon^2/(SP)}`
(:func:`standard_error`), and the power of a two-sided level-``alpha`` test against a
true difference :math:`\mu` is about :math:`\Phi(|\mu|/\mathrm{SE} - z_{1-\alpha/2})`
(:func:`power`, normal approximation).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["paired_bootstrap_ci", "passk_per_puzzle", "variance_components", "standard_error", "power",
           "seeds_needed"]


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


def variance_components(d: np.ndarray) -> dict[str, float]:
    r"""Seed, puzzle and residual variances of ``(S, P)`` paired differences (module docstring), by ANOVA.

    With row means :math:`\bar d_{s\cdot}`, column means :math:`\bar d_{\cdot p}` and grand mean :math:`\bar d`:
    :math:`MS_s = P\sum_s(\bar d_{s\cdot}-\bar d)^2/(S-1)`, :math:`MS_p = S\sum_p(\bar d_{\cdot p}-\bar d)^2/(P-1)`,
    :math:`MS_e = \sum_{sp}(d_{sp}-\bar d_{s\cdot}-\bar d_{\cdot p}+\bar d)^2/((S-1)(P-1))`; their expectations are
    :math:`\sigma_\varepsilon^2 + P\sigma_\alpha^2`, :math:`\sigma_\varepsilon^2 + S\sigma_\beta^2` and
    :math:`\sigma_\varepsilon^2`. Returns ``seed``, ``puzzle``, ``residual`` (the first two truncated at 0),
    ``mean`` and the shape.
    """
    d = np.asarray(d, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] < 2 or d.shape[1] < 2:
        raise ValueError(f"need a (seeds, puzzles) array with at least 2 of each, got shape {d.shape}")
    s, p = d.shape
    grand = d.mean()
    rows, cols = d.mean(1), d.mean(0)
    ms_s = p * ((rows - grand) ** 2).sum() / (s - 1)
    ms_p = s * ((cols - grand) ** 2).sum() / (p - 1)
    resid = d - rows[:, None] - cols[None, :] + grand
    ms_e = (resid**2).sum() / ((s - 1) * (p - 1))
    return {"seed": max(0.0, float((ms_s - ms_e) / p)), "puzzle": max(0.0, float((ms_p - ms_e) / s)),
            "residual": float(ms_e), "mean": float(grand), "seeds": s, "puzzles": p}


def standard_error(components: dict[str, float], seeds: int, puzzles: int) -> float:
    r"""The standard error of a mean paired difference over ``S`` seeds and ``P`` puzzles:

    :math:`\sqrt{\sigma_\alpha^2/S + \sigma_\beta^2/P + \sigma_\varepsilon^2/(SP)}` (module docstring).
    """
    if seeds < 1 or puzzles < 1:
        raise ValueError(f"need at least one seed and one puzzle, got {seeds} and {puzzles}")
    c = components
    return math.sqrt(c["seed"] / seeds + c["puzzle"] / puzzles + c["residual"] / (seeds * puzzles))


def _normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def power(components: dict[str, float], effect: float, seeds: int, puzzles: int, alpha: float = 0.05) -> float:
    r"""Approximate power :math:`\Phi(|\mu|/\mathrm{SE} - z_{1-\alpha/2})` to resolve a true difference ``effect``."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    z = _z(1 - alpha / 2)
    return _normal_cdf(abs(effect) / standard_error(components, seeds, puzzles) - z)


def _z(q: float) -> float:
    """The standard normal quantile ``q`` (bisection on the CDF; enough for a power table)."""
    lo, hi = -10.0, 10.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _normal_cdf(mid) < q else (lo, mid)
    return (lo + hi) / 2


def seeds_needed(components: dict[str, float], effect: float, puzzles: int, target: float = 0.8,
                 alpha: float = 0.05, max_seeds: int = 100_000) -> int | None:
    """The fewest seeds with :func:`power` at least ``target``; ``None`` if even ``max_seeds`` do not reach it
    (the puzzle term alone is too large for that many puzzles)."""
    if power(components, effect, max_seeds, puzzles, alpha) < target:
        return None
    lo, hi = 1, max_seeds
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if power(components, effect, mid, puzzles, alpha) >= target else (mid + 1, hi)
    return lo
