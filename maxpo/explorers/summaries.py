"""The numbers each explorer shows, as pure functions of its inputs (no widgets).

Every function computes through the package (:func:`maxpo.advantages`,
:func:`maxpo.maxk_estimate`, :mod:`maxpo.theory.unified_view`, :mod:`maxpo.experiments.bandits`,
:mod:`maxpo.theory.precision`) and raises ``ValueError`` with a message for the
reader when the input does not fit (the explorers show it in place).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import torch

import maxpo
from maxpo.experiments import bandits
from maxpo.theory import precision as numerics
from maxpo.theory import symbolic
from maxpo.theory import unified_view as unified

__all__ = [
    "ENUMERATION_LIMIT",
    "MAXK_METHODS",
    "MAX_GROUP",
    "advantage_summary",
    "check_policy",
    "estimate_summary",
    "exact_gradient",
    "gradient_summary",
    "precision_summary",
    "variance_summary",
]

#: Methods whose target is max@K and that accept real rewards (the explorers' default choice).
MAXK_METHODS = ("maxpo", "pkpo_s", "pkpo_loo", "pkpo_loo1", "canonical")
#: Most rewards a typed group may hold (the figures stay readable and updates fast).
MAX_GROUP = 64
#: Most batches (``actions ** B``) an exact enumeration may visit in an explorer.
ENUMERATION_LIMIT = 2_187

Number = float | Fraction


def _check_group(rewards: Sequence[Number]) -> None:
    if len(rewards) > MAX_GROUP:
        raise ValueError(f"{len(rewards)} rewards: the explorer takes at most {MAX_GROUP}")


def _check_k(k: int, b: int) -> None:
    if not 1 <= k <= b:
        raise ValueError(f"K = {k} with B = {b} samples: max@K needs 1 <= K <= B")


def estimate_summary(rewards: Sequence[Number], k: int) -> dict[str, Any]:
    r"""The max@K estimate of one group, its rank weights, and the estimate at every K.

    ``sorted`` (ascending rewards), ``weights`` (:math:`w_i = \binom{i-1}{K-1}/\binom{B}{K}`
    on the sorted rewards, from :func:`maxpo.theory.symbolic.maxk_weights`), ``estimate``
    (:func:`maxpo.maxk_estimate` at ``k``), ``by_k`` (the estimate for
    ``K = 1..B``), ``binary`` (all rewards 0 or 1: then the estimates are pass@K,
    from :func:`maxpo.passk_estimate`).
    """
    _check_group(rewards)
    b = len(rewards)
    _check_k(k, b)
    r = torch.tensor([float(v) for v in rewards], dtype=torch.float64)
    binary = all(v in (0, 1) for v in rewards)
    estimate = maxpo.passk_estimate if binary else maxpo.maxk_estimate
    by_k = [float(estimate(r, kk)) for kk in range(1, b + 1)]
    return {
        "sorted": sorted(float(v) for v in rewards),
        "weights": [float(w) for w in symbolic.maxk_weights(b, k)],
        "estimate": by_k[k - 1],
        "by_k": by_k,
        "binary": binary,
    }


def advantage_summary(rewards: Sequence[Number], k: int, method: str) -> dict[str, Any]:
    """Advantages of one group and their summary statistics.

    Returns ``advantages`` (list, in the order typed), ``sum``, ``mean``,
    ``variance`` (population variance across the group), ``abs_sum``,
    ``centred`` (``|sum| <= 1e-12 * max(1, abs_sum)``: zero up to float64 rounding)
    and ``rho_hat`` (the max@K estimate, ``None`` if ``k > B``). Raises
    ``ValueError`` with the package's message if the method does not accept
    this input (``maxpo`` at K = B, ``chen_passk`` on non-binary rewards, ...).
    """
    _check_group(rewards)
    a = maxpo.advantages(torch.tensor([float(v) for v in rewards], dtype=torch.float64), k, method)
    mean = float(a.mean())
    return {
        "advantages": a.tolist(),
        "sum": float(a.sum()),
        "mean": mean,
        "variance": float(((a - mean) ** 2).mean()),
        "abs_sum": float(a.abs().sum()),
        "centred": abs(float(a.sum())) <= 1e-12 * max(1.0, float(a.abs().sum())),
        "rho_hat": float(maxpo.maxk_estimate([float(v) for v in rewards], k)) if k <= len(rewards) else None,
    }


def check_policy(rewards: Sequence[Number], probs: Sequence[Number], b: int) -> None:
    """A categorical policy an explorer can enumerate: one positive probability per action, sum 1, few batches."""
    if len(probs) != len(rewards):
        raise ValueError(f"{len(rewards)} rewards but {len(probs)} probabilities: give one per action")
    if any(v <= 0 for v in probs) or abs(float(sum(probs)) - 1) > 1e-9:
        raise ValueError(f"probabilities must be positive and sum to 1 (they sum to {float(sum(probs)):.6g})")
    if len(probs) ** b > ENUMERATION_LIMIT:
        raise ValueError(f"{len(probs)} actions and B = {b} make {len(probs) ** b} batches: "
                         f"at most {ENUMERATION_LIMIT} are enumerated here (fewer actions or a smaller B)")


def _bandit(rewards: Sequence[Number], probs: Sequence[Number]) -> bandits.Bandit:
    """The categorical policy as a :class:`maxpo.experiments.bandits.Bandit` whose arms pay a fixed reward each."""
    if len(rewards) < 2:
        raise ValueError("a policy needs at least two actions")
    arms = tuple(bandits.Discrete((float(r),), (1.0,)) for r in rewards)
    return bandits.Bandit("typed policy", arms=arms, logits=tuple(math.log(float(p)) for p in probs))


def exact_gradient(rewards: Sequence[Number], probs: Sequence[Number], k: int) -> tuple[float, list[float]]:
    r""":math:`J_K` and :math:`\nabla_\theta J_K` (logits of a softmax policy), exact in float64.

    From :meth:`maxpo.experiments.bandits.Bandit.gradient` (the order-statistic integral
    :math:`K\pi_b \int F^{K-1}(F - F_b)`, exact for rewards with finitely many values).
    """
    bandit = _bandit(rewards, probs)
    return float(bandit.objective(k)), bandit.gradient(k).tolist()


def gradient_summary(rewards: Sequence[Number], probs: Sequence[Number], b: int, k: int) -> dict[str, Any]:
    r"""The signal's expected gradient against the exact :math:`\nabla J_K` for a categorical policy.

    ``exact`` = :math:`\nabla_\theta J_K` with respect to the logits (exact
    in float64, :func:`exact_gradient`);
    ``expected`` = :math:`E[\sum_i s_i \nabla\log\pi(y_i)]` over every batch of
    ``b`` samples with the signal ``pkpo_s`` (:func:`maxpo.theory.unified_view.gradient_moments`);
    ``mean_signal`` = :math:`E[s_1 \mid y_1 = a]` per action; ``variance`` =
    :math:`E\|\hat g - E\hat g\|^2`; ``objective`` = :math:`J_K`.
    """
    check_policy(rewards, probs, b)
    if k > b:
        raise ValueError(f"K = {k} > B = {b}: a group of B samples has no unbiased max@K estimate")
    objective, grad = exact_gradient(rewards, probs, k)
    mom = unified.gradient_moments([float(v) for v in probs], [float(v) for v in rewards], b, k, "pkpo_s")
    return {
        "exact": grad,
        "expected": mom["mean"],
        "mean_signal": mom["conditional_mean"],
        "variance": mom["total_variance"],
        "objective": objective,
        "batches": mom["batches"],
    }


def variance_summary(rewards: Sequence[Number], probs: Sequence[Number], b: int, k: int,
                     methods: Sequence[str] = MAXK_METHODS) -> dict[str, dict[str, float]]:
    r"""Per method: exact gradient bias, total variance and unified-view offset for a categorical policy.

    Enumerates every batch (float64). For each method that accepts ``(B, K)``:
    ``bias`` = :math:`\max_c |E[\hat g]_c - \lambda \nabla_c J_K|` (:math:`\lambda` = B/K for
    ``canonical``, else 1), ``variance`` = :math:`E\|\hat g - E\hat g\|^2`,
    ``mean_abs_sum`` = :math:`E|\sum_i A_i|`, ``offset`` = the mean over actions of
    :math:`E[A_i|y_i=a] - \lambda\frac{K}{B}A_K(a)` and ``offset_spread`` its range over
    actions (0 when the unified view holds). The true advantage comes from the exact
    gradient, :math:`A_K(a) = \partial_{\theta_a} J_K / (K\pi_a)`.
    """
    check_policy(rewards, probs, b)
    if k > b:
        raise ValueError(f"K = {k} > B = {b}: a group of B samples has no unbiased max@K estimate")
    p, r = [float(v) for v in probs], [float(v) for v in rewards]
    _, grad = exact_gradient(rewards, probs, k)
    a_k = [g / (k * pa) for g, pa in zip(grad, p)]  # the true advantage: grad_a J_K = K pi_a A_K(a)
    out: dict[str, dict[str, float]] = {}
    for name in methods:
        if maxpo.METHODS[name].check(b, k) is not None:
            continue
        lam = b / k if name == "canonical" else 1.0
        mom = unified.gradient_moments(p, r, b, k, name)
        diffs = [m - lam * k / b * a for m, a in zip(mom["conditional_mean"], a_k)]
        out[name] = {
            "bias": max(abs(m - lam * g) for m, g in zip(mom["mean"], grad)),
            "variance": mom["total_variance"],
            "mean_abs_sum": mom["mean_abs_sum"],
            "offset": sum(diffs) / len(diffs),
            "offset_spread": max(diffs) - min(diffs),
        }
    return out


def precision_summary(b: int, k: int, offset: float = 0.0, groups: int = 8,
                      seed: int = 0) -> dict[str, dict[str, float]]:
    """Float32 relative error and centering error of three pipelines on uniform rewards + ``offset``.

    The reference is the package in float64 on the *same* float32 rewards, so
    only the computation's error is measured, not the rounding of the input.
    Pipelines: ``package`` (float32 in and out, float64 inside), ``float32``
    (every step in float32, log-space weights, shifted), ``float32, no shift``.
    """
    if not 1 <= k <= b - 1:
        raise ValueError(f"K = {k} with B = {b}: MaxPO needs 1 <= K <= B - 1")
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(groups, b, generator=gen, dtype=torch.float64) + offset).float()
    ref = maxpo.advantages(x.double(), k)
    runs = {
        "package": maxpo.advantages(x, k),
        "float32": numerics.closed_form_maxpo(x, k, torch.float32),
        "float32, no shift": numerics.closed_form_maxpo(x, k, torch.float32, shift=False),
    }
    return {name: {"relative_error": numerics.relative_error(a, ref), "centering_error": numerics.centering_error(a)}
            for name, a in runs.items()}
