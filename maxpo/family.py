r"""The loo-1/MaxPO family of max@K advantages and its variance in λ.

PKPO's loo-1 advantage and MaxPO's Leave-Two-Out advantage are both unbiased for
:math:`\nabla J_K` (the sum-over-the-group convention of :func:`maxpo.advantages`).
Any fixed affine combination of two unbiased estimators of the same quantity is
unbiased, so for every fixed real :math:`\lambda`

.. math::
   A(\lambda) = (1-\lambda)\,A^{\text{loo-1}} + \lambda\,A^{\text{MaxPO}}
              = A^{\text{loo-1}} - \lambda D,\qquad D = A^{\text{loo-1}} - A^{\text{MaxPO}},

gives :math:`E[\sum_i A_i(\lambda)\nabla\log\pi(y_i)] = \nabla J_K` (λ outside
:math:`[0, 1]` included). Only :math:`\lambda = 1` is centred: the advantages sum
to :math:`(1-\lambda)\,K(\hat\rho_K - \hat\rho_{K-1})`, with :math:`\hat\rho_m` the
max@m U-statistic of the group, which is not 0 in general.

The gradient estimate is linear in the advantages, so with
:math:`g_a = \sum_i A^{\text{loo-1}}_i S_i` and :math:`g_b = \sum_i A^{\text{MaxPO}}_i S_i`
(:math:`S_i` the score of sample :math:`i`), :math:`g(\lambda) = g_a + \lambda(g_b - g_a)`
and its total variance is a parabola in λ (:func:`variance_quadratic`). Because both
ends have the same mean, :math:`E[g_b - g_a] = 0`, and
:math:`\mathrm{tr\,Var}\,g(\lambda) = E\|g(\lambda)\|^2 - \|\nabla J_K\|^2`: the best λ
can be estimated from second moments of per-group gradients of a batch, without
repeats (:func:`batch_optimal_lambda`).

Why no ``METHODS`` entry: :func:`maxpo.advantages` takes ``(rewards, k, method)``
and its method table records one fixed estimator per name (centred or not, its
offset); λ is a real parameter and the family's properties depend on it (centred
only at λ = 1, offset :math:`(1-\lambda)\delta`). So the family is its own
function, :func:`lambda_advantages`, whose two ends are exactly
``advantages(..., "pkpo_loo1")`` (λ = 0) and ``advantages(..., "maxpo")`` (λ = 1).

This module is part of the core layer: it imports only torch and the core.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple

import numpy as np
import torch

from maxpo._validate import as_mask, as_reward_tensor
from maxpo.estimators import KSpec, advantages, maxk_estimate

__all__ = [
    "LambdaChoice",
    "OffsetToNoise",
    "VarianceQuadratic",
    "batch_optimal_lambda",
    "family_gradients",
    "lambda_advantages",
    "offset_to_noise",
    "optimal_lambda",
    "variance_quadratic",
]

_WORK = torch.float64


def _check_lambda(lam: Any) -> float:
    if isinstance(lam, bool) or not isinstance(lam, numbers.Real):
        if isinstance(lam, torch.Tensor) and lam.dim() == 0 and lam.dtype != torch.bool and not lam.is_complex():
            lam = float(lam)
        else:
            raise TypeError(f"lam must be a real number, got {lam!r} of type {type(lam).__name__}")
    lam = float(lam)
    if not math.isfinite(lam):
        raise ValueError(f"lam must be finite, got lam = {lam}")
    return lam


def _ends(rewards: Any, k: KSpec, mask: Any, who: str) -> tuple[torch.Tensor, torch.Tensor, torch.dtype]:
    """(loo-1, MaxPO) advantages in float64 and the output dtype, through the core's own checks.

    Both ends must exist, so every group needs ``2 <= K <= B - 1`` (every key of a mixture);
    the error says which end refused and why.
    """
    t, out_dtype = as_reward_tensor(rewards)
    work = t.to(_WORK)
    try:
        a_maxpo = advantages(work, k, "maxpo", mask)
        a_loo1 = advantages(work, k, "pkpo_loo1", mask)
    except ValueError as exc:
        raise ValueError(f"{who} needs both ends of the family (pkpo_loo1 and maxpo), so 2 <= k <= B - 1 "
                         f"in every group: {exc}") from None
    return a_loo1, a_maxpo, out_dtype


def lambda_advantages(rewards: Any, k: KSpec, lam: float, mask: Any = None) -> torch.Tensor:
    r"""The loo-1/MaxPO family: :math:`A(\lambda) = (1-\lambda)A^{\text{loo-1}} + \lambda A^{\text{MaxPO}}`.

    Properties (checked exactly in ``tests/test_family.py`` by enumerating a small
    categorical policy in fractions):

    * unbiased for :math:`\nabla J_K` for every fixed real λ (also outside [0, 1]);
    * centred (:math:`\sum_i A_i = 0` in every batch) only at λ = 1 (MaxPO); in
      general :math:`\sum_i A_i(\lambda) = (1-\lambda)K(\hat\rho_K - \hat\rho_{K-1})`;
    * λ = 0 returns exactly ``advantages(rewards, k, "pkpo_loo1", mask)`` and λ = 1
      exactly ``advantages(rewards, k, "maxpo", mask)``; both are :math:`O(B\log B)`.

    A λ chosen from the same batch makes the gradient biased; choose it from earlier
    batches (e.g. with :func:`batch_optimal_lambda`) so that each step stays unbiased
    given λ.

    Args:
        rewards: ``(..., B)`` rewards, the last dimension a group (same rules as
            :func:`maxpo.advantages`).
        k: the K of max@K, or a mixture ``{K: w_K}`` (both ends take mixtures; the
            result is then unbiased for :math:`\sum_K w_K\nabla J_K`).
        lam: the mixing weight λ, a finite real number.
        mask: optional bool mask, ``True`` = real sample; masked entries get 0.

    Returns:
        A tensor shaped like ``rewards``, in its floating dtype (float64 for integer,
        bool, list or numpy input); computed in float64.

    Raises:
        ValueError: every error of :func:`maxpo.advantages` for either end (the
            family needs ``2 <= K <= B - 1`` in every group), non-finite λ.
        TypeError: non-numeric rewards, non-integer ``k``, non-real λ.
    """
    lam = _check_lambda(lam)
    a_loo1, a_maxpo, out_dtype = _ends(rewards, k, mask, "lambda_advantages")
    if lam == 0.0:
        out = a_loo1
    elif lam == 1.0:
        out = a_maxpo
    else:
        out = torch.lerp(a_loo1, a_maxpo, lam)
    return out.to(out_dtype)


# --------------------------------------------------------------------------- variance in λ
class VarianceQuadratic(NamedTuple):
    r"""Coefficients of :math:`\mathrm{tr\,Var}\,g(\lambda) = v_0 + 2\lambda v_1 + \lambda^2 v_2`.

    For :math:`g(\lambda) = (1-\lambda)g_a + \lambda g_b = g_a + \lambda e`,
    :math:`e = g_b - g_a`: :math:`v_0 = \mathrm{tr\,Var}\,g_a`,
    :math:`v_1 = \mathrm{tr\,Cov}(g_a, e)`, :math:`v_2 = \mathrm{tr\,Var}\,e`.
    (In the notation :math:`g(\lambda) = g_0 - \lambda e'` with :math:`e' = g_a - g_b`
    one has :math:`\lambda^\star = \mathrm{tr\,Cov}(g_0, e')/\mathrm{tr\,Var}\,e' = -v_1/v_2`.)
    Tensors of the batch shape of the input (0-d for one ``(R, d)`` pair).
    """

    v0: torch.Tensor
    v1: torch.Tensor
    v2: torch.Tensor

    def at(self, lam: float) -> torch.Tensor:
        r""":math:`v_0 + 2\lambda v_1 + \lambda^2 v_2`, the total variance of :math:`g(\lambda)`."""
        return self.v0 + 2 * lam * self.v1 + lam * lam * self.v2

    def argmin(self) -> torch.Tensor:
        r""":math:`\lambda^\star = -v_1 / v_2` (NaN/inf where :math:`v_2 = 0`)."""
        return -self.v1 / self.v2

    def minimum(self) -> torch.Tensor:
        r""":math:`v_0 - v_1^2 / v_2`, the variance at :math:`\lambda^\star`."""
        return self.v0 - self.v1 * self.v1 / self.v2


class LambdaChoice(NamedTuple):
    r"""The variance-minimising λ and :math:`\mathrm{Var}(\lambda^\star)/\mathrm{Var}(1)` (1 = MaxPO)."""

    lam: float
    ratio: float


def _paired(g_a: Any, g_b: Any) -> tuple[torch.Tensor, torch.Tensor]:
    def conv(x: Any, name: str) -> torch.Tensor:
        if isinstance(x, torch.Tensor):
            t = x.detach()
        else:
            arr = np.asarray(x)
            if arr.dtype.kind not in "biuf":
                raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
            t = torch.as_tensor(arr)
        if t.is_complex() or t.dtype == torch.bool:
            raise TypeError(f"{name} must be real numbers, got dtype {t.dtype}")
        if t.dim() < 2:
            raise ValueError(f"{name} must have shape (..., R, d): rows are R repeats, columns the d "
                             f"gradient coordinates (use x[:, None] for scalars); got shape {tuple(t.shape)}")
        t = t.to(_WORK)
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contains NaN or infinite values")
        return t

    a, b = conv(g_a, "g_a"), conv(g_b, "g_b")
    if a.shape != b.shape:
        raise ValueError(f"g_a and g_b must be paired (same shape), got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[-2] < 2:
        raise ValueError(f"need at least 2 repeats (rows) to estimate a variance, got R = {a.shape[-2]}")
    if a.shape[-1] < 1:
        raise ValueError("g_a and g_b have no gradient coordinates (d = 0)")
    return a, b


def variance_quadratic(g_a: Any, g_b: Any) -> VarianceQuadratic:
    r"""Unbiased coefficients of the total variance of :math:`g(\lambda) = (1-\lambda)g_a + \lambda g_b`.

    ``g_a`` and ``g_b`` are ``(..., R, d)``: R paired i.i.d. repeats (rows) of two
    gradient estimators (computed from the same draws), d coordinates; leading
    dimensions are independent problems (e.g. prompts), handled separately. With
    :math:`e = g_b - g_a` and sample covariances with divisor :math:`R - 1`
    (each unbiased),

    .. math::
       \mathrm{tr\,Var}\,g(\lambda) = v_0 + 2\lambda v_1 + \lambda^2 v_2,\quad
       v_0 = \mathrm{tr\,Var}\,g_a,\ v_1 = \mathrm{tr\,Cov}(g_a, e),\ v_2 = \mathrm{tr\,Var}\,e,

    so the curve at every λ is unbiased too. For the family of this module pass
    ``g_a`` = loo-1's and ``g_b`` = MaxPO's gradients (see :func:`family_gradients`).
    Sum the coefficients over prompts for the variance of a batch gradient.

    Raises:
        ValueError: shapes that differ or have fewer than 2 rows or 0 columns,
            non-finite values. TypeError: non-numeric input.
    """
    a, b = _paired(g_a, g_b)
    e = b - a
    ac = a - a.mean(-2, keepdim=True)
    ec = e - e.mean(-2, keepdim=True)
    r = a.shape[-2]
    v0 = (ac * ac).sum((-2, -1)) / (r - 1)
    v1 = (ac * ec).sum((-2, -1)) / (r - 1)
    v2 = (ec * ec).sum((-2, -1)) / (r - 1)
    return VarianceQuadratic(v0, v1, v2)


def optimal_lambda(g_a: Any, g_b: Any) -> LambdaChoice:
    r"""The λ minimising :math:`\mathrm{tr\,Var}\,g(\lambda)` and :math:`\mathrm{Var}(\lambda^\star)/\mathrm{Var}(1)`.

    :math:`\lambda^\star = -v_1/v_2` from :func:`variance_quadratic` with the
    coefficients summed over any leading dimensions (one λ for all problems), and
    ratio :math:`(v_0 - v_1^2/v_2)/(v_0 + 2v_1 + v_2)` (below 1 when some λ beats
    ``g_b``; 1 when λ* = 1). Each coefficient is unbiased; λ* and the ratio are
    ratios of unbiased estimates (consistent, not unbiased).

    Raises:
        ValueError: as :func:`variance_quadratic`, and when :math:`v_2 = 0` (the two
            estimators agree on every repeat, λ does not matter) or
            :math:`\mathrm{Var}(1) = 0`.
    """
    q = variance_quadratic(g_a, g_b)
    v0, v1, v2 = (float(c.sum()) for c in q)
    if not v2 > 0:
        raise ValueError("g_a and g_b differ by a constant on every repeat (tr Var(g_b - g_a) = 0): "
                         "every λ gives the same variance, there is no optimum")
    var1 = v0 + 2 * v1 + v2
    if not var1 > 0:
        raise ValueError("g_b has zero variance over the repeats: Var(λ*)/Var(1) is undefined")
    return LambdaChoice(lam=-v1 / v2, ratio=(v0 - v1 * v1 / v2) / var1)


# --------------------------------------------------------------------------- batch diagnostics
def family_gradients(rewards: Any, k: KSpec, scores: Any, mask: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Per-group gradient estimates of the family's two ends, loo-1's and MaxPO's.

    :math:`g_a = \sum_i A^{\text{loo-1}}_i S_i` and :math:`g_b = \sum_i A^{\text{MaxPO}}_i S_i`.

    Args:
        rewards: ``(..., B)`` rewards, as in :func:`lambda_advantages`.
        k: K, or a mixture ``{K: w_K}``.
        scores: ``(..., B, d)`` per-sample score vectors :math:`S_i = \nabla\log\pi(y_i)`
            (or any fixed projection of them, e.g. the last layer's gradient).
        mask: optional bool mask of the rewards' shape.

    Returns:
        ``(g_a, g_b)``, each ``(..., d)`` float64. :math:`g(\lambda) = g_a + \lambda(g_b - g_a)`.
    """
    a_loo1, a_maxpo, _ = _ends(rewards, k, mask, "family_gradients")
    s = scores.detach() if isinstance(scores, torch.Tensor) else torch.as_tensor(np.asarray(scores))
    if s.is_complex() or not (s.is_floating_point() or s.dtype in (torch.int32, torch.int64)):
        raise TypeError(f"scores must be real numbers, got dtype {s.dtype}")
    if tuple(s.shape[:-1]) != tuple(a_loo1.shape):
        raise ValueError(f"scores must have shape rewards.shape + (d,) = {tuple(a_loo1.shape)} + (d,), "
                         f"got {tuple(s.shape)}")
    s = s.to(device=a_loo1.device, dtype=_WORK)
    m = as_mask(mask, a_loo1.shape, a_loo1.device)
    if m is not None:
        s = s * m.unsqueeze(-1)  # masked scores may be padding junk
    if not bool(torch.isfinite(s).all()):
        raise ValueError("scores contain NaN or infinite values at real samples")
    g_a = torch.einsum("...i,...id->...d", a_loo1, s)
    g_b = torch.einsum("...i,...id->...d", a_maxpo, s)
    return g_a, g_b


def batch_optimal_lambda(rewards: Any, k: KSpec, scores: Any, mask: Any = None) -> float:
    r"""Estimate the variance-minimising λ of the family from one batch (no repeats needed).

    Both ends are unbiased for the same gradient, so :math:`e = g_b - g_a` has mean 0
    exactly and :math:`\mathrm{tr\,Var}\,g(\lambda) = E\|g_a\|^2 + 2\lambda E\langle g_a, e\rangle
    + \lambda^2 E\|e\|^2 - \|\nabla J_K\|^2`. Summed over the groups of a batch (any
    mix of prompts), the batch gradient's total variance is minimised at

    .. math::
       \hat\lambda^\star = -\frac{\sum_{\text{groups}} \langle g_a, e\rangle}{\sum_{\text{groups}} \|e\|^2},

    a ratio of unbiased estimates of :math:`-v_1` and :math:`v_2`. Use it for the
    *next* batches: a λ fitted on the batch it is applied to biases the step.

    Raises:
        ValueError: as :func:`family_gradients`, and when :math:`e = 0` in every group
            (e.g. all groups have equal rewards): no information about λ.
    """
    g_a, g_b = family_gradients(rewards, k, scores, mask)
    e = g_b - g_a
    den = float((e * e).sum())
    if not den > 0:
        raise ValueError("loo-1 and MaxPO give the same gradient in every group of this batch "
                         "(no reward spread): the batch carries no information about λ")
    return -float((g_a * e).sum()) / den


class OffsetToNoise(NamedTuple):
    r"""Per-group rewards-only diagnostic of loo-1's offset (see :func:`offset_to_noise`)."""

    offset: torch.Tensor  #: :math:`\bar d`, unbiased for :math:`\delta = \frac{K}{B}(J_K - J_{K-1})`
    noise: torch.Tensor  #: jackknife estimate of :math:`\mathrm{sd}(\bar d)`
    ratio: torch.Tensor  #: :math:`|\bar d| / \mathrm{sd}`: the offset-to-noise ratio
    lam: torch.Tensor  #: :math:`\rho^2/(1+\rho^2)`, the λ* this ratio implies under the assumption


def offset_to_noise(rewards: Any, k: int, mask: Any = None) -> OffsetToNoise:
    r"""Loo-1's offset and its in-batch noise, from rewards alone, per group.

    MaxPO is loo-1 minus an in-batch estimate :math:`\bar d` of loo-1's offset
    :math:`\delta = \frac{K}{B}(J_K - J_{K-1})`; here
    :math:`\bar d = \frac1B\sum_i A^{\text{loo-1}}_i = \frac{K}{B}(\hat\rho_K - \hat\rho_{K-1})`
    (U-statistics of the group, so :math:`E\bar d = \delta`). Its noise
    :math:`\mathrm{sd}(\bar d)` is estimated by the jackknife over the group's samples,
    :math:`\widehat{\mathrm{Var}} = \frac{B-1}{B}\sum_i(\bar d_{-i} - \overline{\bar d_{-\cdot}})^2`
    with :math:`\bar d_{-i}` the same statistic (same B and K weights) on the B - 1 others.

    The book's rule (bandit chapter): MaxPO beats loo-1 when :math:`\rho = \delta/\mathrm{sd}(\bar d) > 1`,
    and under the same approximations the best member of the family is
    :math:`\lambda^\star \approx \rho^2/(1+\rho^2)`. **Assumption:** the rule holds when
    the best constant shift of loo-1's advantages is δ, i.e.
    :math:`E\langle g_0, \sum_i S_i\rangle = \delta\,E\|\sum_i S_i\|^2`, which is true when
    the score vectors are exchangeable and uncorrelated with the rewards given the
    group (a bandit's softmax policy with its scores bounded independently of the
    reward, in the book's studies). It fails when correct and wrong answers have
    different score norms: in the lab's language model wrong answers were longer and
    less probable, and MaxPO had the *higher* variance although :math:`\rho > 1.5` for
    most prompts (see the book's lab chapter). When per-sample gradients are
    available, prefer :func:`batch_optimal_lambda`, which needs no assumption.

    Single-group values are noisy; average ``offset`` over groups of one prompt before
    dividing. Requires ``2 <= k <= B - 1`` in every group (then each leave-one-out
    group still has ``k`` samples).
    ``ratio`` is NaN where offset and noise are both 0 (no reward spread).

    Returns:
        :class:`OffsetToNoise` of tensors of shape ``rewards.shape[:-1]`` (float64).
    """
    if isinstance(k, dict):
        raise TypeError("offset_to_noise takes a single integer k (the offset of a mixture is not one δ)")
    a_loo1, _, _ = _ends(rewards, k, mask, "offset_to_noise")
    t, _ = as_reward_tensor(rewards)
    t = t.to(_WORK)
    n_full = t.shape[-1]
    m = as_mask(mask, t.shape, t.device)
    if m is None:
        m = torch.ones(t.shape, dtype=torch.bool, device=t.device)
    counts = m.sum(-1)
    batch = tuple(t.shape[:-1])
    n = counts.to(_WORK)
    offset = (a_loo1 * m).sum(-1) / n
    # leave-one-out copies: row i drops sample i; weights (K/B) with the group's own B
    eye = torch.eye(n_full, dtype=torch.bool, device=t.device)
    loo_mask = m.unsqueeze(-2) & ~eye  # (..., B, B)
    loo_rewards = t.unsqueeze(-2).expand(*batch, n_full, n_full)
    real_rows = m  # row i exists only if sample i is real
    safe_mask = torch.where(real_rows.unsqueeze(-1), loo_mask, m.unsqueeze(-2))  # masked rows: any valid group
    rho_k = maxk_estimate(loo_rewards, k, safe_mask)
    rho_k1 = maxk_estimate(loo_rewards, k - 1, safe_mask)
    d_loo = (k / n).unsqueeze(-1) * (rho_k - rho_k1)
    d_loo = torch.where(real_rows, d_loo, torch.zeros_like(d_loo))
    d_mean = d_loo.sum(-1, keepdim=True) / n.unsqueeze(-1)
    dev = torch.where(real_rows, d_loo - d_mean, torch.zeros_like(d_loo))
    noise = torch.sqrt((n - 1) / n * (dev * dev).sum(-1))
    ratio = offset.abs() / noise
    lam = ratio * ratio / (1 + ratio * ratio)
    lam = torch.where(torch.isinf(ratio), torch.ones_like(lam), lam)
    return OffsetToNoise(offset=offset, noise=noise, ratio=ratio, lam=lam)
