r"""The policy-gradient loss: advantages in, a scalar to differentiate out.

Per answer token :math:`t` of answer :math:`i` (ratio :math:`\rho = \pi_\theta / \pi_{old}`,
equal to 1 in value on the first update of a batch):

.. math::

    \ell_{it} = -\min\big(\rho_{it} A_i,\ \mathrm{clip}(\rho_{it}, 1-\epsilon, 1+\epsilon) A_i\big)
                + \beta\, \mathrm{KL}_{it},

with :math:`\mathrm{KL}_{it} = e^{d} - d - 1`, :math:`d = \log\pi_{ref} - \log\pi_\theta`
(the non-negative "k3" estimate of KL to the warm-start model).

Aggregation over a step of G prompts x B answers:

* ``sequence``: :math:`L = \frac1G \sum_g \sum_i \sum_t \ell_{git}`. With one update
  per batch and no KL its gradient is :math:`\frac1G\sum_g \sum_i A_{gi}\nabla\log\pi(y_{gi})`,
  exactly the estimator of the book (a sum over the group, a mean over prompts):
  an unbiased method stays unbiased.
* ``token``: :math:`L = \frac1{N_{tok}} \sum_{g,i,t} \ell_{git}`, every token weighted the
  same (DAPO's token-level loss). Long answers weigh more than short ones, which
  changes the estimator; the overall factor differs from ``sequence`` by about
  B times the mean answer length.

Making methods comparable. The estimators are defined on different scales: the
max@K methods of the book (maxpo, pkpo_*) estimate :math:`\nabla J_K` itself, so
their advantages are of order K/B smaller than a reward difference; GRPO divides
by the group's standard deviation; RLOO and Dr. GRPO are reward differences.
:func:`advantage_scale` multiplies the max@K methods by B/K. That maps MaxPO to
the canonical advantage :math:`Q_i - V^{(K)}_{-i}` (RLOO at K = 1), a reward
difference, and leaves every other method as it is. Only the step size changes,
never the direction; Adam, which the lab uses, is in any case nearly invariant to
a constant factor in the loss. The factor matters for the KL term, whose weight
is relative to the policy-gradient term.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

import maxpo

__all__ = ["advantage_scale", "scaled_advantages", "LossParts", "policy_loss"]

#: Methods whose advantages are scaled to estimate grad J_K itself (multiplied by B/K).
_GRAD_JK_SCALED = frozenset({"maxpo", "maxpo_pairwise", "pkpo_s", "pkpo_loo", "pkpo_loo1"})
#: Methods already on the scale of a reward difference (or std-normalised).
_REWARD_SCALED = frozenset({"canonical", "chen_passk", "tang_loo", "grpo_passk", "grpo", "dr_grpo", "rloo"})
#: Methods multiplied by B: maxrl, whose B-fold is MaxRL's own per-sample form r_i/rbar - 1.
_B_SCALED = frozenset({"maxrl"})


def advantage_scale(method: str, b: int, k: int) -> float:
    """Factor the lab applies to ``method``'s advantages (B/K for the grad-J_K-scaled ones, B for maxrl, else 1).

    Raises:
        ValueError: a method that :data:`maxpo.METHODS` lacks, or one this table has
            no entry for (a newly added estimator must be given its scale here).
    """
    if method not in maxpo.METHODS:
        raise ValueError(f"unknown advantage method {method!r}; choose one of: {', '.join(maxpo.METHODS)}")
    if method in _GRAD_JK_SCALED:
        return b / k
    if method in _REWARD_SCALED:
        return 1.0
    if method in _B_SCALED:
        return float(b)
    raise ValueError(f"method {method!r} has no loss scale in maxpo.lab.loss; add it to one of the tables")


def scaled_advantages(rewards: torch.Tensor, k: int, method: str, scale: float) -> torch.Tensor:
    """``maxpo.advantages(rewards, k, method)`` times ``scale`` (:func:`advantage_scale`): what the loss uses."""
    return maxpo.advantages(rewards, k, method=method) * scale


@dataclass
class LossParts:
    """The loss and what is logged about it (float statistics over this process's tokens)."""

    loss: torch.Tensor
    pg: float
    kl: float
    clip_frac: float


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    aggregation: str,
    denom: float,
    clip_eps: float = 0.0,
    ref_logp: torch.Tensor | None = None,
    kl_coef: float = 0.0,
) -> LossParts:
    """Clipped policy-gradient loss with optional KL (see the module docstring).

    Args:
        logp, old_logp: ``(N, T)`` token log-probabilities now and when sampled
            (``old_logp`` without graph).
        adv: ``(N,)`` advantage of each answer (already scaled).
        mask: ``(N, T)`` bool, real answer tokens.
        aggregation: ``"sequence"`` or ``"token"``.
        denom: the global normaliser: G (prompts in the step, all processes) for
            ``sequence``, the global token count for ``token``, divided by the
            number of processes (DDP averages gradients over processes).
        clip_eps: PPO clipping range, 0 for none.
        ref_logp: ``(N, T)`` log-probabilities under the reference model, for KL.
        kl_coef: KL weight.
    """
    if aggregation not in ("sequence", "token"):
        raise ValueError(f"aggregation must be 'sequence' or 'token', got {aggregation!r}")
    if denom <= 0:
        raise ValueError(f"loss normaliser must be positive, got {denom}")
    m = mask.to(logp.dtype)
    ratio = torch.exp(logp - old_logp)
    a = adv.to(logp.dtype)[:, None]
    pg = -ratio * a
    clip_frac = 0.0
    if clip_eps > 0:
        clipped = -torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * a
        clip_frac = float(((clipped > pg).to(m.dtype) * m).sum() / m.sum().clamp(min=1))
        pg = torch.maximum(pg, clipped)
    per_token = pg
    kl_mean = 0.0
    if ref_logp is not None and kl_coef > 0:
        d = ref_logp - logp
        kl = torch.exp(d) - d - 1
        per_token = per_token + kl_coef * kl
        kl_mean = float((kl.detach() * m).sum() / m.sum().clamp(min=1))
    loss = (per_token * m).sum() / denom
    return LossParts(loss=loss, pg=float((pg.detach() * m).sum() / denom), kl=kl_mean, clip_frac=clip_frac)
