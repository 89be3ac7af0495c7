r"""Exact computations behind the book's warnings about running max@K estimators in trainers.

The policy is a softmax over ``m`` outcomes with rewards ``values`` and
probabilities ``probs`` (a prompt whose completions fall into ``m`` reward
levels; ``m = 2`` with values ``(0, 1)`` is pass@K with pass rate ``p``). A group
is ``B`` i.i.d. samples, so it is described by the counts ``c`` of each outcome
(multinomial), and an advantage method gives every sample of outcome ``j`` the
same advantage ``A_j(c)`` (ties get identical advantages). The expected update
along the logits ``theta`` is then the finite sum

.. math:: E[\hat g] = \sum_c P(c) \sum_j c_j A_j(c) (e_j - \pi),

which :func:`expected_update` evaluates exactly (in float64) for any method and
for what a trainer may do on top of it (:data:`TRANSFORMS`), and which can be
compared with the exact :math:`\nabla_\theta J_K` of :func:`maxk_gradient`.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Literal

import torch

import maxpo
from maxpo.integrations.grouping import Scale, check_options, group_scale_factors

__all__ = ["TRANSFORMS", "Transform", "apply_transform", "compositions", "expected_update",
           "maxk_gradient", "pass_rate_profile", "sequence_weights"]

#: What a trainer may do to the advantages it is given, per group of ``B``:
#: ``none``; ``group_std``: ``(A - mean A) / (std A + 1e-4)`` per group (TRL's
#: ``scale_rewards="group"``, GRPO's normalisation, Bessel-corrected std);
#: ``center``: ``A - mean A`` (Dr. GRPO, TRL's ``scale_rewards="none"``).
TRANSFORMS = ("none", "group_std", "center")
Transform = Literal["none", "group_std", "center"]

_TRL_STD_EPS = 1e-4


def apply_transform(adv: torch.Tensor, transform: Transform) -> torch.Tensor:
    """Apply a trainer's per-group re-centring / std normalisation (last dim = group) to advantages."""
    if transform == "none":
        return adv
    centered = adv - adv.mean(-1, keepdim=True)
    if transform == "center":
        return centered
    if transform == "group_std":
        return centered / (adv.std(-1, keepdim=True, correction=1) + _TRL_STD_EPS)
    raise ValueError(f"transform must be one of {TRANSFORMS}, got {transform!r}")


def compositions(total: int, parts: int) -> torch.Tensor:
    """All count vectors of ``parts`` non-negative integers summing to ``total``, shape ``(n, parts)``."""
    if total < 0 or parts < 1:
        raise ValueError(f"need total >= 0 and parts >= 1, got total = {total}, parts = {parts}")
    rows = [tuple(b - a - 1 for a, b in zip((-1, *cuts), (*cuts, total + parts - 1), strict=True))
            for cuts in itertools.combinations(range(total + parts - 1), parts - 1)]
    return torch.tensor(rows, dtype=torch.long)


def _check_policy(values: Sequence[float], probs: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    v = torch.as_tensor(values, dtype=torch.float64)
    p = torch.as_tensor(probs, dtype=torch.float64)
    if v.dim() != 1 or v.shape != p.shape or len(v) < 2:
        raise ValueError(
            f"values and probs must be 1-D of the same length >= 2, got {tuple(v.shape)}, {tuple(p.shape)}")
    if bool((p <= 0).any()) or abs(float(p.sum()) - 1) > 1e-9:
        raise ValueError(f"probs must be positive and sum to 1, got {p.tolist()}")
    if len(set(v.tolist())) != len(v):
        raise ValueError(f"values must be distinct reward levels, got {v.tolist()}")
    return v, p


def _outcome_advantages(values: torch.Tensor, group_size: int, k: int, method: str, transform: Transform,
                        scale: Scale) -> tuple[torch.Tensor, torch.Tensor]:
    """Every count vector ``c`` of a group and the advantage ``A_j(c)`` of outcome ``j`` (0 if absent)."""
    m, b = len(values), int(group_size)
    counts = compositions(b, m)  # (n, m)
    groups = torch.stack([torch.repeat_interleave(values, c) for c in counts])  # (n, B), outcomes in order
    adv = maxpo.advantages(groups, k, method) * group_scale_factors(method, k, torch.tensor([b]), scale)[0]
    adv = apply_transform(adv, transform)
    first = torch.cumsum(counts, -1) - counts  # position of outcome j's first sample
    return counts, adv.gather(-1, first.clamp(max=b - 1)) * (counts > 0)


def _expectation(counts: torch.Tensor, per_outcome: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """``sum_c P(c) sum_j c_j A_j(c) (e_j - pi)`` for each row of ``probs`` ``(P, m)``; returns ``(P, m)``."""
    b = int(counts[0].sum())
    log_multinomial = math.lgamma(b + 1) - torch.lgamma(counts.to(torch.float64) + 1).sum(-1, keepdim=True)
    log_w = log_multinomial + counts.to(torch.float64) @ torch.log(probs).T  # (n, P)
    ca = counts * per_outcome  # (n, m): c_j A_j(c)
    weights = torch.exp(log_w)  # (n, P)
    # sum_j c_j A_j (e_j - pi) = c * A - pi * sum_j c_j A_j
    return weights.T @ ca - probs * (weights.T @ ca.sum(-1, keepdim=True))


def expected_update(values: Sequence[float], probs: Sequence[float], group_size: int, k: int,
                    method: str = "maxpo", transform: Transform = "none",
                    scale: Scale = "per_sample") -> torch.Tensor:
    r"""Exact :math:`E[\sum_i A_i \nabla_\theta \log\pi(y_i)]` for a softmax policy, shape ``(m,)``.

    ``A`` is ``maxpo.advantages(group, k, method)`` times the factor of ``scale``,
    then ``transform`` (:data:`TRANSFORMS`). Sums over the ``C(B+m-1, m-1)``
    count vectors with multinomial weights.
    """
    k, method, scale = check_options(k, method, scale)
    v, p = _check_policy(values, probs)
    counts, per_outcome = _outcome_advantages(v, group_size, k, method, transform, scale)
    return _expectation(counts, per_outcome, p.unsqueeze(0))[0]


def maxk_gradient(values: Sequence[float], probs: Sequence[float], k: int) -> torch.Tensor:
    r"""Exact :math:`\nabla_\theta J_K` for the softmax policy, :math:`J_K = \sum_x x (F(x)^K - F(x^-)^K)`."""
    v, p = _check_policy(values, probs)
    order = torch.argsort(v)
    theta = torch.log(p).clone().requires_grad_(True)
    pi = torch.softmax(theta, 0)[order]
    cdf = torch.cumsum(pi, 0)
    below = cdf - pi
    j_k = (v[order] * (cdf ** k - below ** k)).sum()
    (grad,) = torch.autograd.grad(j_k, theta)
    return grad


def pass_rate_profile(pass_rates: Sequence[float], group_size: int, k: int, method: str = "maxpo",
                      transform: Transform = "none", scale: Scale = "per_sample") -> torch.Tensor:
    r"""Expected update along the logit of a correct answer, per pass rate ``p`` (binary rewards).

    For ``p = sigmoid(theta)`` this is :math:`E[\hat g]` along ``theta``; the truth
    is :math:`dJ_K/d\theta = K p (1-p)^K`. Returned for each ``p``, shape ``(len(pass_rates),)``.
    """
    k, method, scale = check_options(k, method, scale)
    p = torch.as_tensor(pass_rates, dtype=torch.float64).reshape(-1)
    if bool(((p <= 0) | (p >= 1)).any()):
        raise ValueError(f"pass rates must lie strictly between 0 and 1, got {p.tolist()}")
    values = torch.tensor([0.0, 1.0], dtype=torch.float64)
    counts, per_outcome = _outcome_advantages(values, group_size, k, method, transform, scale)
    return _expectation(counts, per_outcome, torch.stack([1 - p, p], -1))[:, 1]


def sequence_weights(adv: Sequence[float], lengths: Sequence[int], loss_type: str,
                     max_completion_length: int | None = None) -> torch.Tensor:
    r"""Weight each completion's summed token log-prob gradient gets in one group's loss.

    A trainer's loss is :math:`-\sum_i w_i \sum_t \log\pi(y_{i,t})`; an unbiased
    estimator needs :math:`w_i \propto A_i` with one constant for the whole batch.

    * ``"dr_grpo"`` (TRL) / ``seq-mean-token-sum-norm`` (verl, with ``loss_scale_factor = L_max``;
      left at ``null``, verl 0.9.1 divides by each micro-batch's padded width instead):
      ``A_i / (B L_max)``: proportional.
    * ``"dapo"``, ``"bnpo"`` (TRL) / ``token-mean`` (verl): ``A_i / sum_j |y_j|``:
      proportional within the batch, a batch-dependent constant.
    * ``"grpo"`` (TRL) / ``seq-mean-token-mean`` (verl): ``A_i / (B |y_i|)``: re-weighted by length.
    """
    a = torch.as_tensor(adv, dtype=torch.float64)
    n = torch.as_tensor(lengths, dtype=torch.float64)
    if a.shape != n.shape or a.dim() != 1:
        raise ValueError(f"adv and lengths must be 1-D of the same length, got {tuple(a.shape)}, {tuple(n.shape)}")
    if bool((n < 1).any()):
        raise ValueError("every completion needs at least one token")
    b = len(a)
    if loss_type in ("dr_grpo", "seq-mean-token-sum-norm"):
        if max_completion_length is None or max_completion_length < int(n.max()):
            raise ValueError(f"loss_type {loss_type!r} needs max_completion_length >= the longest completion")
        return a / (b * max_completion_length)
    if loss_type in ("dapo", "bnpo", "token-mean"):
        return a / n.sum()
    if loss_type in ("grpo", "seq-mean-token-mean"):
        return a / (b * n)
    raise ValueError(f"unknown loss_type {loss_type!r}; known: dr_grpo, dapo, bnpo, grpo (TRL), "
                     "seq-mean-token-sum-norm, token-mean, seq-mean-token-mean (verl)")
