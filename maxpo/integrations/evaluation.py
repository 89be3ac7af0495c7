r"""Unbiased pass@k and max@k evaluation metrics from ``n`` samples per prompt, with standard errors.

For a prompt with ``n`` sampled rewards, sorted ascending :math:`r_{(1)} \le \dots \le r_{(n)}`,
the max@k estimate is the U-statistic over all k-subsets,

.. math:: \hat\rho_k = \binom{n}{k}^{-1} \sum_{|S| = k} \max_{i \in S} r_i
          = \sum_{i=1}^{n} \binom{i-1}{k-1} \binom{n}{k}^{-1} r_{(i)},

unbiased for the expected best of ``k`` fresh samples (:func:`maxpo.maxk_estimate`);
for 0/1 rewards with ``c`` correct it is pass@k, :math:`1 - \binom{n-c}{k}/\binom{n}{k}`.
A metric is the mean of :math:`\hat\rho_k` over the prompts with at least ``k``
samples, and its standard error is :math:`s/\sqrt{P}`, ``s`` the sample standard
deviation (``ddof=1``) of the per-prompt estimates over the ``P`` prompts (it
includes the sampling noise of the ``n`` samples; ``nan`` when ``P = 1``).

A bootstrap that draws the ``k`` samples *with* replacement (verl's ``best@k``)
estimates something else: the best of ``k`` draws from the empirical
distribution, where a single correct answer among ``n = 4`` is found with
probability :math:`1 - (3/4)^4 \approx 0.684`, not 1. It reads low.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

import maxpo
from maxpo.integrations.grouping import _codes, _dense_groups

__all__ = ["at_k_metrics", "check_ks", "is_binary", "per_prompt_estimates", "standard_error"]


def check_ks(ks: Any, name: str = "k") -> tuple[int, ...]:
    """``ks`` (an int or a list of ints) as a sorted tuple of distinct positive ints.

    Raises:
        ValueError: naming ``name`` and the bad value.
    """
    values = [ks] if isinstance(ks, (int, np.integer)) and not isinstance(ks, bool) else ks
    try:
        values = list(values)
    except TypeError:
        raise ValueError(f"{name} must be a positive integer or a list of them, got {ks!r}") from None
    out = []
    for k in values:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"{name} must be a positive integer or a list of them, got {ks!r}")
        out.append(int(k))
    if not out:
        raise ValueError(f"{name} is empty: give at least one k, e.g. [1, 4]")
    return tuple(sorted(set(out)))


def is_binary(values: Iterable[float]) -> bool:
    """True when every value is 0 or 1 (then max@k is pass@k)."""
    return all(float(v) in (0.0, 1.0) for v in values)


def at_k_metrics(rewards: Sequence[float] | np.ndarray | torch.Tensor, group_ids: Sequence[Any] | np.ndarray,
                 ks: Any, *, name: str = "max") -> dict[str, float]:
    """Unbiased ``<name>@k`` over prompts, with its standard error, for each k of ``ks``.

    ``rewards``: one reward per sample; ``group_ids``: the prompt of each sample
    (any hashable labels, in any order). Returns, for each k with at least one
    prompt of ``k`` or more samples, ``"<name>@k"`` (the mean over those prompts of
    the per-prompt estimate), ``"<name>@k/se"`` (its standard error across prompts)
    and ``"<name>@k/prompts"`` (how many prompts entered). Prompts with fewer than
    ``k`` samples are left out (no unbiased estimate exists for them).
    """
    ks = check_ks(ks)
    out: dict[str, float] = {}
    for k in ks:
        per_prompt = per_prompt_estimates(rewards, group_ids, k)
        p = per_prompt.numel()
        if p == 0:
            continue
        out[f"{name}@{k}"] = float(per_prompt.mean())
        out[f"{name}@{k}/se"] = standard_error(per_prompt.tolist())
        out[f"{name}@{k}/prompts"] = float(p)
    return out


def standard_error(values: Sequence[float]) -> float:
    r""":math:`s/\sqrt{P}` with ``s`` the sample standard deviation (``ddof=1``) of ``P`` values; nan if ``P < 2``."""
    p = len(values)
    if p < 2:
        return float("nan")
    return float(np.std(np.asarray(values, dtype=np.float64), ddof=1)) / math.sqrt(p)


def per_prompt_estimates(rewards: Sequence[float] | np.ndarray | torch.Tensor,
                         group_ids: Sequence[Any] | np.ndarray | torch.Tensor,
                         k: int, valid: Sequence[bool] | np.ndarray | torch.Tensor | None = None) -> torch.Tensor:
    """The unbiased max@k estimate of each prompt with at least ``k`` (valid) samples, in order of first appearance.

    Rows where ``valid`` is False (unscored samples) are left out; NaN rewards in
    the remaining rows raise ``ValueError``.
    """
    r = torch.as_tensor(np.asarray(rewards, dtype=np.float64)).reshape(-1)
    n = r.numel()
    ok = torch.ones(n, dtype=torch.bool) if valid is None else \
        torch.as_tensor(np.asarray(valid, dtype=bool)).reshape(-1)
    if n == 0 or not bool(ok.any()):
        return torch.zeros(0, dtype=torch.float64)
    if bool(torch.isnan(r[ok]).any()):
        raise ValueError("rewards contain NaN: leave unscored samples out before computing at-k metrics")
    codes, labels = _codes(group_ids, n)
    sizes = torch.bincount(codes[ok], minlength=len(labels))
    take = ok & (sizes >= k)[codes]
    if not bool(take.any()):
        return torch.zeros(0, dtype=torch.float64)
    dense, mask, *_ = _dense_groups(r, codes, take, len(labels))
    return maxpo.maxk_estimate(dense, k, mask=mask)
