r"""Confidence intervals for Monte Carlo studies: grouped jackknife over blocks of draws.

Every statistic of a study is a smooth function of a few *block sums* (sums over
the draws of one block). The grouped jackknife recomputes the statistic with one
block left out, ``G`` times, and estimates its standard error by

.. math::

    \mathrm{se}(\hat\theta) = \sqrt{\tfrac{G-1}{G} \sum_{g=1}^{G} (\hat\theta_{(-g)} - \bar\theta_{(\cdot)})^2 } .

Because all methods of a study see the same draws (common random numbers),
blocks are shared, and a ratio of two methods' statistics gets a *paired*
standard error simply by computing the ratio inside the jackknife.
Normal intervals are ``estimate +/- z * se`` (``z = 1.96`` for 95%).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch

__all__ = ["Z95", "block_sums", "jackknife", "chi2_sf", "t975", "seed_band"]

#: two-sided 95% normal quantile
Z95 = 1.959963984540054


def block_sums(values: torch.Tensor, blocks: int) -> torch.Tensor:
    """Sum ``values`` (draws along dim 0) within ``blocks`` contiguous blocks: ``(blocks, ...)``.

    The number of draws must be a multiple of ``blocks``.
    """
    n = values.shape[0]
    if n % blocks:
        raise ValueError(f"{n} draws do not split into {blocks} equal blocks")
    return values.reshape((blocks, n // blocks) + tuple(values.shape[1:])).sum(1)


def jackknife(stat: Callable[[Mapping[str, torch.Tensor]], torch.Tensor],
              sums: Mapping[str, torch.Tensor]) -> tuple[float, float]:
    """Estimate and grouped-jackknife standard error of ``stat``.

    ``sums[name]`` has shape ``(G, ...)`` (per-block sums). ``stat`` maps a dict of
    *totals* with one leading batch dimension, ``(R, ...)``, to ``(R,)``; it is
    evaluated at once on the full totals (row 0) and on the ``G``
    leave-one-block-out totals (rows 1..G).
    """
    g = next(iter(sums.values())).shape[0]
    stacked = {}
    for k, v in sums.items():
        total = v.sum(0, keepdim=True)
        stacked[k] = torch.cat([total, total - v])
    vals = stat(stacked).to(torch.float64)
    est, loo = float(vals[0]), vals[1:]
    if not torch.isfinite(loo).all():
        return est, math.nan
    se = math.sqrt((g - 1) / g * float(((loo - loo.mean()) ** 2).sum()))
    return est, se


def chi2_sf(x: float, df: int) -> float:
    """P(chi^2_df > x), the regularised upper incomplete gamma Q(df/2, x/2)."""
    return float(torch.special.gammaincc(torch.tensor(df / 2, dtype=torch.float64),
                                         torch.tensor(x / 2, dtype=torch.float64)))


#: two-sided 95% quantiles of Student's t with 1..30 degrees of freedom
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
         2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
         2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (normal beyond 30)."""
    if df < 1:
        raise ValueError("need at least one degree of freedom")
    return _T975[df - 1] if df <= len(_T975) else Z95


def seed_band(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean over seeds (dim 0) and a 95% t-interval ``mean +/- t * sd / sqrt(n)``: ``(mean, lo, hi)``.

    With one seed the interval collapses to the mean.
    """
    v = values.to(torch.float64)
    n = v.shape[0]
    mean = v.mean(0)
    if n < 2:
        return mean, mean.clone(), mean.clone()
    half = t975(n - 1) * v.std(0, correction=1) / math.sqrt(n)
    return mean, mean - half, mean + half
