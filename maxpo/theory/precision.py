r"""Floating-point precision experiments for the chapter *Computing it fast and safely*.

The package computes MaxPO from sorted rewards with rank weights built from
log-binomials, shifted so that each group's maximum is 0, in float64. This
module holds the *alternatives* that the chapter measures those choices
against, and the error measures (timing lives in :mod:`maxpo.benchmarking.timing`):

* :func:`first_overflow` -- the smallest B at which a binomial coefficient no
  longer fits a floating type (exact integer arithmetic, no floats involved);
* :func:`binomial_weights` -- max@K rank weights from raw binomials in a chosen
  dtype (what a direct transcription of the formula does) or from
  log-binomials;
* :func:`closed_form_maxpo` -- the :math:`O(B\log B)` closed form with a chosen
  working dtype, with or without the shift, with raw or log weights;
* :func:`relative_error`, :func:`centering_error` -- the two error measures.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = [
    "binomial_weights",
    "centering_error",
    "closed_form_maxpo",
    "first_overflow",
    "relative_error",
]


def _float_max(dtype: torch.dtype) -> int:
    return int(torch.finfo(dtype).max)


def first_overflow(k_of_b: Callable[[int], int], dtype: torch.dtype = torch.float64, start: int = 1) -> int:
    r"""Smallest :math:`B \ge` ``start`` with :math:`\binom{B}{k(B)}` larger than ``dtype``'s largest finite value.

    Exact: binomials are Python integers. ``k_of_b(B)`` must make
    :math:`\binom{B}{k(B)}` non-decreasing in B (e.g. ``B // 2`` or a constant), so
    that doubling then bisection finds the first crossing.
    """
    limit = _float_max(dtype)

    def over(b: int) -> bool:
        return math.comb(b, k_of_b(b)) > limit

    lo, hi = start, max(start, 2)
    while not over(hi):
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # invariant: not over(lo) (or lo == start), over(hi)
        mid = (lo + hi) // 2
        if over(mid):
            hi = mid
        else:
            lo = mid
    return lo if over(lo) else hi


def _raw_comb(n: torch.Tensor, m: int, dtype: torch.dtype) -> torch.Tensor:
    """C(n, m) elementwise by the multiplicative formula, in ``dtype`` (overflows to inf)."""
    out = torch.ones_like(n, dtype=dtype)
    for j in range(1, m + 1):
        out = out * ((n.to(dtype) - m + j) / j)  # intermediate values are C(n-m+j, j) <= C(n, m)
    return torch.where(n >= m, out, torch.zeros_like(out))


def binomial_weights(b: int, k: int, dtype: torch.dtype = torch.float64, log_space: bool = True) -> torch.Tensor:
    r"""Max@K rank weights :math:`w_i = \binom{i-1}{K-1}/\binom{B}{K}`, ``i = 1..B``, in ``dtype``.

    ``log_space=True``: ``exp(lgamma(...) - lgamma(...))`` (what the package does),
    finite for every B. ``log_space=False``: numerator and denominator as raw
    binomials in ``dtype``; past :func:`first_overflow` the denominator is
    ``inf`` and the weights become 0 or NaN.
    """
    pos = torch.arange(1, b + 1, dtype=dtype)
    if log_space:
        n = pos - 1
        valid = n >= k - 1
        n_safe = torch.where(valid, n, torch.full_like(n, k - 1))
        log_num = torch.lgamma(n_safe + 1) - math.lgamma(k) - torch.lgamma(n_safe - k + 2)
        log_den = math.lgamma(b + 1) - math.lgamma(k + 1) - math.lgamma(b - k + 1)
        return torch.where(valid, torch.exp(log_num - log_den), torch.zeros_like(n))
    num = _raw_comb((pos - 1).to(torch.float64), k - 1, dtype)
    den = _raw_comb(torch.tensor([float(b)], dtype=torch.float64), k, dtype)
    return num / den


def closed_form_maxpo(rewards: torch.Tensor, k: int, dtype: torch.dtype = torch.float32, shift: bool = True,
                      log_space: bool = True, weight_dtype: torch.dtype | None = None) -> torch.Tensor:
    r"""MaxPO's closed form :math:`A_i = \frac{K}{B-K}(Q_i - \bar Q)` with every step in ``dtype``.

    ``rewards`` is ``(G, B)``. Steps: sort ascending; subtract each group's
    maximum if ``shift``; :math:`Q_{(i)} = \text{own}_i r_{(i)} + \sum_{m>i} \text{tail}_m r_{(m)}` with
    :math:`\text{own}_i = \binom{i-1}{K-1}/\binom{B-1}{K-1}` and
    :math:`\text{tail}_m = \binom{m-2}{K-2}/\binom{B-1}{K-1}` (log-space or raw), the
    suffix sum by ``cumsum``; centre; unsort. The weights are computed in
    ``weight_dtype`` (default: ``dtype``) and then rounded to ``dtype``. Ties are
    not merged (continuous rewards have none). For experiments only;
    :func:`maxpo.advantages` is the implementation.
    """
    wdt = dtype if weight_dtype is None else weight_dtype
    x = rewards.to(dtype)
    n = x.shape[-1]
    xs, order = torch.sort(x, dim=-1)
    if shift:
        xs = xs - xs[..., -1:]
    pos = torch.arange(1, n + 1, dtype=wdt)

    def lgam(v: float) -> torch.Tensor:
        return torch.lgamma(torch.tensor(float(v), dtype=wdt))

    def ratio(top: torch.Tensor, m: int, bottom_n: int, bottom_m: int) -> torch.Tensor:
        if m < 0:
            return torch.zeros_like(top, dtype=dtype)
        if log_space:
            valid = top >= m
            t = torch.where(valid, top, torch.full_like(top, m))
            log = (torch.lgamma(t + 1) - lgam(m + 1) - torch.lgamma(t - m + 1)
                   - (lgam(bottom_n + 1) - lgam(bottom_m + 1) - lgam(bottom_n - bottom_m + 1)))
            return torch.where(valid, torch.exp(log), torch.zeros((), dtype=wdt)).to(dtype)
        den = _raw_comb(torch.tensor([float(bottom_n)], dtype=torch.float64), bottom_m, wdt)
        return (_raw_comb(top.to(torch.float64), m, wdt) / den).to(dtype)

    own = ratio(pos - 1, k - 1, n - 1, k - 1)
    tail = ratio(pos - 2, k - 2, n - 1, k - 1)
    terms = tail * xs
    suffix = torch.flip(torch.cumsum(torch.flip(terms, (-1,)), -1), (-1,))
    after = torch.nn.functional.pad(suffix[..., 1:], (0, 1))
    q = own * xs + after
    a = k / (n - k) * (q - q.mean(-1, keepdim=True))
    return torch.empty_like(a).scatter_(-1, order, a)


def relative_error(approx: torch.Tensor, exact: torch.Tensor) -> float:
    r""":math:`\max_i |\tilde A_i - A_i| / \max_i |A_i|` over all groups (computed in float64)."""
    a, e = approx.to(torch.float64), exact.to(torch.float64)
    return float((a - e).abs().max() / e.abs().max())


def centering_error(adv: torch.Tensor) -> float:
    r"""Worst group's :math:`|\sum_i A_i| / \sum_i |A_i|`, the sums taken in float64 (0 = exactly centered)."""
    a = adv.to(torch.float64)
    return float((a.sum(-1).abs() / a.abs().sum(-1).clamp_min(torch.finfo(torch.float64).tiny)).max())
