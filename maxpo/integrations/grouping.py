r"""Group a flat batch by prompt, compute max@K advantages, and choose their scale.

Trainers hold one flat vector of rewards (one entry per completion) and a way
to tell which completions share a prompt: consecutive runs in TRL, a ``uid``
string per row in verl. :func:`group_advantages` turns that into the padded
``(groups, B_max)`` tensor and mask that :func:`maxpo.advantages` takes, and
scatters the result back, so groups may have different sizes and need not be
contiguous.

Scale
-----
:func:`maxpo.advantages` returns the package convention: the *sum* over a group
of :math:`A_i \nabla\log\pi(y_i)` is unbiased for :math:`\nabla J_K`. Trainers
such as TRL and verl instead *average* the policy-gradient loss over the
completions (or their tokens) of a batch, so a natural advantage there is one
on the scale of a single sample's advantage,
:math:`A_K(y) = Q_K(y) - J_K` with :math:`\nabla J_K = K\,E[A_K(y)\nabla\log\pi(y)]`.
The ``scale`` argument picks one of:

``"per_sample"`` (default)
    Methods in the sum convention (``maxpo``, ``maxpo_pairwise``, ``pkpo_s``,
    ``pkpo_loo``, ``pkpo_loo1``, ``tang_loo``) are multiplied by ``B/K``, with ``B``
    the group's number of real samples; the others (``canonical``, ``rloo``,
    ``dr_grpo``, ``grpo``, ``chen_passk``, ``grpo_passk``) are already per-sample and are left
    as they are; ``maxrl`` is multiplied by ``B``, giving MaxRL's own per-sample form
    :math:`r_i/\bar r - 1`. Then ``maxpo`` becomes the canonical advantage
    :math:`Q_i - V_{-i}^{(K)}` (conditionally unbiased for :math:`A_K(y_i)`), and
    at ``K = 1`` it equals RLOO, ``r_i - mean_{j != i} r_j``: advantages are on the
    reward's scale, like Dr. GRPO's, so learning rates tuned for an unnormalised
    GRPO carry over. The mean over a group of ``A_i grad log pi(y_i)`` is then
    unbiased for :math:`\nabla J_K / K`.
``"sum"``
    Exactly :func:`maxpo.advantages` (the package convention).
a positive number ``c``
    ``c`` times ``"sum"``.

Groups too small for the method
-------------------------------
A group can hold fewer real samples than the method needs (``maxpo`` needs
``K <= B - 1``), for example when a reward function returned ``None`` for some
completions, or when verl passes a group of another size. With
``undersized="zero"`` (default) such groups get advantage 0, the same as a group
whose rewards are all equal, and a ``RuntimeWarning`` says how many; with
``undersized="raise"`` they raise ``ValueError``. A batch in which no non-empty
group is usable at all always raises: that is a configuration error (``K`` too
large for the group size), not bad luck.
"""
from __future__ import annotations

import math
import numbers
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import torch

import maxpo
from maxpo._validate import check_k

__all__ = ["PER_SAMPLE_RULE", "SCALES", "GroupedAdvantages", "Scale", "check_options",
           "group_advantages", "group_scale_factors", "method_size_problem"]

#: What ``scale`` may be, besides a positive number.
SCALES: tuple[str, ...] = ("per_sample", "sum")

#: ``scale`` is one of :data:`SCALES` or a positive number.
Scale = Literal["per_sample", "sum"] | float

#: Factor that puts each method on the per-sample scale: ``"B/K"`` for the methods
#: whose :func:`maxpo.advantages` output sums to an unbiased ``grad J_K`` over a group,
#: ``"1"`` for those already on a per-sample scale (``METHODS[m]["scale"]`` says which),
#: ``"B"`` for ``maxrl`` (a harmonic mixture of max@K gradients; times B it is r_i/rbar - 1).
PER_SAMPLE_RULE: dict[str, str] = {
    "maxpo": "B/K",
    "maxpo_pairwise": "B/K",
    "pkpo_s": "B/K",
    "pkpo_loo": "B/K",
    "pkpo_loo1": "B/K",
    "tang_loo": "B/K",
    "maxrl": "B",
    "canonical": "1",
    "chen_passk": "1",
    "grpo_passk": "1",
    "grpo": "1",
    "dr_grpo": "1",
    "rloo": "1",
}


@dataclass(frozen=True)
class GroupedAdvantages:
    """Result of :func:`group_advantages`.

    ``advantages``: one value per input row, in the rewards' floating dtype and on
    their device (float64 for integer or bool input), 0 for invalid rows and for the rows
    of undersized groups. ``group_sizes``: real samples per group, in order of
    first appearance of each label. ``undersized``: how many non-empty groups were
    too small for the method; ``empty``: groups with no valid row.
    """

    advantages: torch.Tensor
    group_sizes: torch.Tensor
    undersized: int
    empty: int

    @property
    def n_groups(self) -> int:
        """Number of distinct group labels in the batch."""
        return int(self.group_sizes.numel())


def check_options(k: Any, method: str, scale: Any, undersized: str = "zero") -> tuple[int, str, Scale]:
    """Validate ``k``, ``method``, ``scale`` and ``undersized``; return ``(k, method, scale)``.

    Raises ``ValueError`` (``TypeError`` for a non-integer ``k``) naming the bad value.
    """
    if method not in maxpo.METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of: {', '.join(maxpo.METHODS)}")
    k = check_k(k)
    if isinstance(scale, str):
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES} or a positive number, got {scale!r}")
        if scale == "per_sample" and method not in PER_SAMPLE_RULE:
            raise ValueError(
                f"no per-sample scale is known for method {method!r}; pass scale='sum' or a positive number")
    elif isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        raise TypeError(f"scale must be one of {SCALES} or a positive number, got {scale!r}")
    else:
        scale = float(scale)
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"a numeric scale must be finite and > 0 (it multiplies the gradient), got {scale}")
    if undersized not in ("zero", "raise"):
        raise ValueError(f"undersized must be 'zero' or 'raise', got {undersized!r}")
    return k, method, scale


@lru_cache(maxsize=4096)
def method_size_problem(method: str, n: int, k: int) -> str | None:
    """Why ``method`` cannot run on a group of ``n`` real samples at this ``k`` (None if it can).

    Asks :func:`maxpo.advantages` itself on a group of ``n`` zeros, so the answer
    and the message are always the estimator's own.
    """
    try:
        maxpo.advantages(torch.zeros(n, dtype=torch.float64), k, method)
    except ValueError as exc:
        return re.sub(r"; every group has B = \d+ real samples and k = \d+$", "", str(exc))
    return None


def group_scale_factors(method: str, k: int, group_sizes: torch.Tensor, scale: Scale) -> torch.Tensor:
    """Per-group multiplier applied to :func:`maxpo.advantages` for the chosen ``scale``.

    ``per_sample``: ``B_g / k`` for the methods marked ``"B/K"`` in
    :data:`PER_SAMPLE_RULE`, ``B_g`` for those marked ``"B"``, else 1. ``sum``: 1. A number ``c``: ``c``.
    Returns float64, shaped like ``group_sizes``.
    """
    sizes = group_sizes.to(torch.float64)
    if scale == "per_sample":
        rule = PER_SAMPLE_RULE[method]
        if rule == "B/K":
            return sizes / k
        return sizes.clone() if rule == "B" else torch.ones_like(sizes)
    if scale == "sum":
        return torch.ones_like(sizes)
    return torch.full_like(sizes, float(scale))


def _codes(group_ids: Any, n: int) -> tuple[torch.Tensor, list[Any]]:
    """Integer code per row (order of first appearance) and the distinct labels."""
    if isinstance(group_ids, torch.Tensor):
        ids = group_ids.detach().cpu().reshape(-1).tolist()
    else:
        ids = np.asarray(group_ids, dtype=object).reshape(-1).tolist()
    if len(ids) != n:
        raise ValueError(f"got {len(ids)} group labels for {n} rewards (one label per completion is needed)")
    table: dict[Any, int] = {}
    codes = [table.setdefault(label, len(table)) for label in ids]
    return torch.tensor(codes, dtype=torch.long), list(table)


def group_advantages(
    rewards: torch.Tensor | Sequence[float] | np.ndarray,
    group_ids: torch.Tensor | Sequence[Any] | np.ndarray,
    k: int,
    method: str = "maxpo",
    *,
    scale: Scale = "per_sample",
    valid: torch.Tensor | Sequence[bool] | np.ndarray | None = None,
    undersized: Literal["zero", "raise"] = "zero",
) -> GroupedAdvantages:
    r"""Advantages of a flat batch whose rows are grouped by a label.

    Computes, for every group ``g`` (the rows sharing a label in ``group_ids``,
    in any order, of any size), ``c_g * maxpo.advantages(r_g, k, method)`` where
    ``r_g`` are the group's valid rewards and ``c_g`` the factor of ``scale``
    (:func:`group_scale_factors`). One batched call to :func:`maxpo.advantages`
    with a mask; ``O(N log N)`` for the closed-form methods.

    Args:
        rewards: ``(N,)`` scalar rewards, one per completion.
        group_ids: ``(N,)`` hashable labels (prompt index, verl ``uid`` strings).
        k: the K of max@K.
        method: a key of :data:`maxpo.METHODS`.
        scale: ``"per_sample"`` (default), ``"sum"`` or a positive number (module docstring).
        valid: optional ``(N,)`` bool, False for rows to leave out (e.g. a completion
            no reward function could score); they get 0 and do not count in ``B``.
        undersized: ``"zero"`` or ``"raise"``, for groups too small for the method.

    Returns:
        :class:`GroupedAdvantages`.

    Raises:
        ValueError: bad options, shapes, non-finite valid rewards, a group too
            small for the method (``undersized="raise"``), or no usable group at all.
    """
    k, method, scale = check_options(k, method, scale, undersized)
    r = rewards if isinstance(rewards, torch.Tensor) else torch.as_tensor(np.asarray(rewards))
    r = r.detach()
    if r.dim() != 1:
        raise ValueError(f"rewards must be a 1-D tensor (one reward per completion), got shape {tuple(r.shape)}")
    out_dtype = r.dtype if r.is_floating_point() else torch.float64
    device = r.device
    n = r.numel()
    codes, labels = _codes(group_ids, n)
    codes = codes.to(device)
    if valid is None:
        ok = torch.ones(n, dtype=torch.bool, device=device)
    else:
        ok = valid if isinstance(valid, torch.Tensor) else torch.as_tensor(np.asarray(valid))
        if ok.dtype != torch.bool or tuple(ok.shape) != (n,):
            raise ValueError(f"valid must be a bool tensor of shape ({n},), got {ok.dtype} {tuple(ok.shape)}")
        ok = ok.to(device)

    nonfinite = (ok & ~torch.isfinite(r.to(torch.float64))).nonzero()
    if len(nonfinite):
        i = int(nonfinite[0])
        raise ValueError(f"reward of row {i} (group {labels[int(codes[i])]!r}) is not finite: {float(r[i])}")

    n_groups = len(labels)
    sizes = torch.bincount(codes[ok], minlength=n_groups)
    problems = {int(s): method_size_problem(method, int(s), k) for s in torch.unique(sizes).tolist() if s > 0}
    usable = torch.tensor([s > 0 and problems[int(s)] is None for s in sizes.tolist()],
                          dtype=torch.bool, device=device)
    nonempty = sizes > 0
    bad = nonempty & ~usable
    n_bad = int(bad.sum())
    if n_bad:
        g = int(bad.nonzero()[0])
        why = problems[int(sizes[g])]
        if undersized == "raise" or not bool(usable.any()):
            raise ValueError(
                f"group {labels[g]!r} ({int(sizes[g])} valid samples) cannot use method {method!r} at k = {k}: "
                f"{why}" + ("" if undersized == "raise" else "; no group in this batch is usable"))
        warnings.warn(
            f"{n_bad} of {n_groups} groups are too small for method {method!r} at k = {k} and get advantage 0 "
            f"(e.g. group {labels[g]!r} with {int(sizes[g])} valid samples: {why})", RuntimeWarning, stacklevel=2)

    result = torch.zeros(n, dtype=out_dtype, device=device)
    if bool(usable.any()):
        rows = (ok & usable[codes]).nonzero().squeeze(-1)
        rows = rows[torch.sort(codes[rows], stable=True).indices]  # rows of each group together, in order
        dense_of_group = torch.full((n_groups,), -1, dtype=torch.long, device=device)
        kept = usable.nonzero().squeeze(-1)
        dense_of_group[kept] = torch.arange(len(kept), device=device)
        dense_row = dense_of_group[codes[rows]]
        kept_sizes = sizes[kept]
        starts = torch.cumsum(kept_sizes, 0) - kept_sizes
        pos = torch.arange(len(rows), device=device) - starts[dense_row]
        width = int(kept_sizes.max())
        dense = torch.zeros((len(kept), width), dtype=torch.float64, device=device)
        mask = torch.zeros((len(kept), width), dtype=torch.bool, device=device)
        dense[dense_row, pos] = r[rows].to(torch.float64)
        mask[dense_row, pos] = True
        adv = maxpo.advantages(dense, k, method, mask=mask)
        adv = adv * group_scale_factors(method, k, kept_sizes, scale).to(device).unsqueeze(-1)
        result[rows] = adv[dense_row, pos].to(out_dtype)
    return GroupedAdvantages(advantages=result, group_sizes=sizes, undersized=n_bad,
                             empty=int((~nonempty).sum()))
