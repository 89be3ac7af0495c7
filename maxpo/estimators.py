r"""Batched max@K / pass@K objective estimates and policy-gradient advantages.

Conventions (see the book, chapters 2-5):

* ``rewards[..., i]`` is the reward of sample ``i`` of a group of ``B`` i.i.d.
  samples of one prompt; any leading dimensions are a batch of groups.
* An advantage vector ``A`` gives the gradient estimate
  :math:`\hat g = \sum_i A_i \nabla\log\pi(y_i)`. Unbiased methods are scaled so
  that :math:`E[\hat g] = \nabla J_K` exactly, with
  :math:`J_K = E[\max(r_1, \dots, r_K)]` (a sum over the group, no ``1/B``).
* Centered means :math:`\sum_i A_i = 0` in every realised batch.

All max@K methods are computed from the sorted rewards
:math:`r_{(1)} \le \dots \le r_{(B)}` with rank weights built from log-binomials
(no overflow at any ``B``), in float64 internally, in :math:`O(B \log B)` (the sort)
except ``maxpo_pairwise`` which is the quadratic reference form. Tied rewards get
bit-identical advantages.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import torch

from maxpo._validate import (
    Mixture,
    as_mask,
    as_reward_tensor,
    check_binary,
    check_finite,
    check_k_spec,
    group_label,
)

__all__ = ["METHODS", "MethodInfo", "advantages", "maxk_estimate", "passk_estimate"]

_WORK = torch.float64  # internal precision of every estimator


# --------------------------------------------------------------------------- rank weights
def _log_comb(a: torch.Tensor, b: float) -> torch.Tensor:
    """log C(a, b) elementwise for float64 ``a``; ``-inf`` where ``b < 0`` or ``b > a``."""
    if b < 0:
        return torch.full_like(a, -math.inf)
    valid = a >= b
    a_safe = torch.where(valid, a, torch.full_like(a, b))
    out = torch.lgamma(a_safe + 1) - math.lgamma(b + 1) - torch.lgamma(a_safe - b + 1)
    return torch.where(valid, out, torch.full_like(a, -math.inf))


def _log_comb_scalar(a: int, b: int) -> float:
    return math.lgamma(a + 1) - math.lgamma(b + 1) - math.lgamma(a - b + 1)


@dataclass(frozen=True)
class RankWeights:
    """Weights on the sorted rewards of a group of ``n`` samples for a given ``k``.

    With positions ``i = 1..n`` (ascending rewards):

    * ``maxk[i]  = C(i-1, k-1) / C(n, k)``   -- the max@K U-statistic (sums to 1)
    * ``own[i]   = C(i-1, k-1) / C(n-1, k-1)`` and ``tail[m] = C(m-2, k-2) / C(n-1, k-1)``
      -- ``Q_(i) = own[i] r_(i) + sum_{m>i} tail[m] r_(m)`` (``own[i] + sum_{m>i} tail[m] = 1``)
    * ``below[j] = C(j-1, k-2) / C(n, k)``   -- PKPO loo-1: ``A_(i) = maxk[i] r_(i) - sum_{j<i} below[j] r_(j)``
    """

    maxk: torch.Tensor
    own: torch.Tensor
    tail: torch.Tensor
    below: torch.Tensor


@lru_cache(maxsize=256)
def _rank_weights(n: int, k: int, device: torch.device) -> RankWeights:
    pos = torch.arange(1, n + 1, dtype=_WORK, device=device)
    log_cnk = _log_comb_scalar(n, k) if k <= n else math.inf
    log_cn1k1 = _log_comb_scalar(n - 1, k - 1) if 1 <= k <= n else math.inf
    maxk = torch.exp(_log_comb(pos - 1, k - 1) - log_cnk)
    own = torch.exp(_log_comb(pos - 1, k - 1) - log_cn1k1)
    tail = torch.exp(_log_comb(pos - 2, k - 2) - log_cn1k1)
    below = torch.exp(_log_comb(pos - 1, k - 2) - log_cnk)
    return RankWeights(maxk=maxk, own=own, tail=tail, below=below)


# --------------------------------------------------------------------------- sorted views
@dataclass
class _Sorted:
    """A dense batch of groups, sorted ascending and shifted so each group's max is 0."""

    values: torch.Tensor  # (G, n) float64, ascending, max (or min) exactly 0
    order: torch.Tensor  # (G, n) int64: values[g, p] = x[g, order[g, p]] - shift
    run_start: torch.Tensor  # (G, n) int64: first sorted position holding the same value
    shift: torch.Tensor  # (G, 1) float64
    scratch: torch.Tensor | None = None  # a free (G, n) float64 buffer, if one is left over

    def unsort(self, a_sorted: torch.Tensor) -> torch.Tensor:
        """Put sorted-order values back in sample order (into the scratch buffer if free)."""
        out = self.scratch if self.scratch is not None else torch.empty_like(a_sorted)
        self.scratch = None
        return out.scatter_(-1, self.order, a_sorted)


def _sort_groups(x: torch.Tensor, anchor: str = "max") -> _Sorted:
    """Sort each group ascending, in float64, shifted so its max (or min) is exactly 0."""
    xs, order = torch.sort(x, dim=-1)
    xs = xs.to(_WORK)
    shift = (xs[..., -1:] if anchor == "max" else xs[..., :1]).clone()
    xs.sub_(shift)  # (a fresh tensor) every max@K quantity here is shift-equivariant
    run_start = torch.searchsorted(xs, xs)  # first position of each value in its sorted row
    return _Sorted(values=xs, order=order, run_start=run_start, shift=shift)


def _q_sorted(s: _Sorted, k: int) -> torch.Tensor:
    """Q_(i): mean over (k-1)-subsets T of the other samples of max(r_(i), max T), sorted order.

    ``Q_(i) = own_i r_(i) + sum_{m > i} tail_m r_(m)``, a convex combination. The formula
    holds at every position for any tie-breaking; taking each run of ties' value at the
    run's start makes tied rewards bit-identical.

    Written into ``s.values`` (which it consumes); ``s.scratch`` receives a spare buffer
    of the same shape. Large fresh allocations cost page faults that can exceed the
    arithmetic, so the hot path reuses buffers.
    """
    w = _rank_weights(s.values.shape[-1], k, s.values.device)
    return _q_weighted(s, w.own, w.tail)


def _q_weighted(s: _Sorted, own: torch.Tensor, tail: torch.Tensor) -> torch.Tensor:
    """``own_i r_(i) + sum_{m > i} tail_m r_(m)`` for any rank weights (see :func:`_q_sorted`).

    Linear in ``(own, tail)``: a combination of several K's weights gives the same
    combination of their Q's in one pass.
    """
    q = torch.mul(s.values, tail)
    torch.cumsum(q, -1, out=q)
    total = q[..., -1:].clone()
    q.neg_().add_(total)  # sum_{m > i} tail_m r_(m)  (values are <= 0 after the shift)
    q.addcmul_(s.values, own)
    torch.gather(q, -1, s.run_start, out=s.values)
    s.scratch = q
    return s.values


@lru_cache(maxsize=256)
def _mixture_q_weights(n: int, mix: Mixture, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Rank weights of :math:`\sum_K w_K \frac{K}{n-K} Q^{(K)}`: MaxPO's mixture before centring."""
    own = torch.zeros(n, dtype=_WORK, device=device)
    tail = torch.zeros(n, dtype=_WORK, device=device)
    for k, w in mix:
        rw = _rank_weights(n, k, device)
        c = w * k / (n - k)
        own.add_(rw.own, alpha=c)
        tail.add_(rw.tail, alpha=c)
    return own, tail


@lru_cache(maxsize=256)
def _mixture_maxk_weights(n: int, mix: Mixture, device: torch.device) -> torch.Tensor:
    r"""Rank weights of :math:`\sum_K w_K \hat\rho_K` (the mixture's objective estimate)."""
    out = torch.zeros(n, dtype=_WORK, device=device)
    for k, w in mix:
        out.add_(_rank_weights(n, k, device).maxk, alpha=w)
    return out


def _harmonic(k: int) -> Mixture:
    """The truncated harmonic mixture ``{K: 1/K for K = 1..k}`` (MaxRL's objective at T = k)."""
    return tuple((j, 1.0 / j) for j in range(1, k + 1))


def _linear_mixture(fn: Callable[[torch.Tensor, int], torch.Tensor]) -> Callable[[torch.Tensor, Any], torch.Tensor]:
    """Extend a single-K method that is linear in its objective to mixtures: sum_K w_K fn(x, K)."""

    def mixed(x: torch.Tensor, k: int | Mixture) -> torch.Tensor:
        if isinstance(k, int):
            return fn(x, k)
        out = torch.zeros(x.shape, dtype=_WORK, device=x.device)
        for kk, w in k:
            out.add_(fn(x, kk), alpha=w)
        return out

    mixed.__name__ = fn.__name__
    mixed.__doc__ = fn.__doc__
    return mixed


# --------------------------------------------------------------------------- dense methods
# Each takes a dense (G, n) tensor of rewards (original dtype) and k, and returns the
# (G, n) float64 advantages in the original sample order.

def _maxpo(x: torch.Tensor, k: int | Mixture) -> torch.Tensor:
    # A = K/(n-K) (Q - mean Q); a mixture combines the rank weights of sum_K w_K K/(n-K) Q^(K)
    # first (one sort, one pass) and centres once: sum_K w_K A^(K) by linearity.
    s = _sort_groups(x)
    n = x.shape[-1]
    if isinstance(k, int):
        q = _q_sorted(s, k)
        return s.unsort(q.sub_(q.mean(-1, keepdim=True)).mul_(k / (n - k)))
    own, tail = _mixture_q_weights(n, k, s.values.device)
    q = _q_weighted(s, own, tail)
    return s.unsort(q.sub_(q.mean(-1, keepdim=True)))


def _canonical(x: torch.Tensor, k: int) -> torch.Tensor:
    s = _sort_groups(x)
    n = x.shape[-1]
    q = _q_sorted(s, k)
    return s.unsort(q.sub_(q.mean(-1, keepdim=True)).mul_(n / (n - k)))


def _pkpo_s(x: torch.Tensor, k: int) -> torch.Tensor:
    s = _sort_groups(x)
    n = x.shape[-1]
    q = _q_sorted(s, k) + s.shift  # undo the shift: s is not shift-invariant
    return s.unsort(k / n * q)


def _pkpo_loo(x: torch.Tensor, k: int) -> torch.Tensor:
    # s_i - k/(n-1) V_{-i}, with V_{-i} = (n rho - k Q_i)/(n-k) and rho = mean(Q).
    s = _sort_groups(x)
    n = x.shape[-1]
    q = _q_sorted(s, k) + s.shift
    rho = q.mean(-1, keepdim=True)
    v_minus = (n * rho - k * q) / (n - k)
    return s.unsort(k / n * q - k / (n - 1) * v_minus)


def _pkpo_loo1(x: torch.Tensor, k: int) -> torch.Tensor:
    # A_(i) = C(n,k)^-1 [C(i-1,k-1) r_(i) - sum_{j<i} C(j-1,k-2) r_(j)]  (shift-invariant)
    #       = sum_{j<i} C(j-1,k-2)/C(n,k) (r_(i) - r_(j)) >= 0.
    # Anchoring the minimum at 0 makes the lowest run exactly 0 (binary: wrong answers get 0);
    # the clamp only removes rounding below the true value's lower bound 0.
    s = _sort_groups(x, anchor="min")
    n = x.shape[-1]
    w = _rank_weights(n, k, s.values.device)
    prefix_before = torch.nn.functional.pad(torch.cumsum(w.below * s.values, -1)[..., :-1], (1, 0))
    start = s.run_start
    a = (w.maxk[start] * s.values - prefix_before.gather(-1, start)).clamp_min(0)
    return s.unsort(a)


_PAIRWISE_CHUNK = 1 << 23  # elements of one (groups, n, n) block


def _maxpo_pairwise(x: torch.Tensor, k: int) -> torch.Tensor:
    r"""Quadratic reference form of the L2O advantage.

    ``A_i = k / (n (n-1)) * sum_{j != i} D_ij`` with
    ``D_ij = E_T[max(r_i, max T) - max(r_j, max T)]``, ``T`` a uniformly random
    ``(k-1)``-subset of the ``n-2`` samples other than ``i`` and ``j``. ``D`` is
    antisymmetric, so the advantages sum to zero. In sorted positions ``a < b``
    (``x = r_(a) <= y = r_(b)``), with ``q`` the position of ``max T``:
    ``q < a`` contributes ``y - x``; ``a < q < b`` contributes ``y - r_(q)``; ``q > b``
    contributes 0, and ``P(q) = C(#rest below q, k-2) / C(n-2, k-1)``. Costs
    ``O(n^2)`` time and memory per group (groups are processed in chunks).
    """
    n = x.shape[-1]
    rows = max(1, _PAIRWISE_CHUNK // (n * n))
    return torch.cat([_maxpo_pairwise_block(x[i:i + rows], k) for i in range(0, x.shape[0], rows)])


def _maxpo_pairwise_block(x: torch.Tensor, k: int) -> torch.Tensor:
    s = _sort_groups(x)
    n = x.shape[-1]
    dev = s.values.device
    v = s.values  # (G, n)
    pos = torch.arange(1, n + 1, dtype=_WORK, device=dev)
    a_pos = pos.view(n, 1)  # row = lower position a
    b_pos = pos.view(1, n)  # col = upper position b
    log_norm = _log_comb_scalar(n - 2, k - 1)
    # P(q < a) = C(a-1, k-1)/C(n-2, k-1); P(q < b, q != a) = C(b-2, k-1)/C(n-2, k-1) for a < b
    p_below_a = torch.exp(_log_comb(a_pos - 1, k - 1) - log_norm)  # (n, 1)
    p_below_b = torch.exp(_log_comb(b_pos - 2, k - 1) - log_norm)  # (1, n)
    # prefix[p] = sum_{q <= p} C(q-2, k-2)/C(n-2, k-1) r_(q)  (q strictly between a and b has q-2 others below)
    c = torch.exp(_log_comb(pos - 2, k - 2) - log_norm)
    prefix = torch.cumsum(c * v, -1)  # (G, n)
    xa = v.unsqueeze(-1)  # (G, n, 1)
    yb = v.unsqueeze(-2)  # (G, 1, n)
    # sum_{a<q<b} c_q r_q = prefix[b-1] - prefix[a]   (1-based); in 0-based: prefix[:, b-2] - prefix[:, a-1]
    pref_b = torch.nn.functional.pad(prefix, (1, 0))[..., :-1].unsqueeze(-2)  # prefix up to b-1
    pref_a = prefix.unsqueeze(-1)  # prefix up to a
    d = p_below_a * (yb - xa) + yb * (p_below_b - p_below_a) - (pref_b - pref_a)
    upper = torch.triu(torch.ones(n, n, dtype=torch.bool, device=dev), diagonal=1)
    d = torch.where(upper, d, torch.zeros((), dtype=_WORK, device=dev))
    # d[a, b] (a < b) is D_ij for i = b (upper), j = a; by antisymmetry D_ji = -D_ij, so
    # A_(p) = (column sum of p) - (row sum of p).
    a_sorted = k / (n * (n - 1)) * (d.sum(-2) - d.sum(-1))
    # ties: equal rewards must get identical advantages
    a_sorted = a_sorted.gather(-1, s.run_start)
    return s.unsort(a_sorted)


def _chen_passk(x: torch.Tensor, k: int) -> torch.Tensor:
    # (Q_i - rho) / sqrt(rho (1 - rho)), 0 where the group has no spread.
    s = _sort_groups(x)
    q = _q_sorted(s, k) + s.shift
    rho = q.mean(-1, keepdim=True)
    sigma = torch.sqrt((rho * (1 - rho)).clamp_min(0))
    out = torch.where(sigma > 0, (q - rho) / torch.where(sigma > 0, sigma, torch.ones_like(sigma)),
                      torch.zeros_like(q))
    return s.unsort(out)


def _grpo_passk(x: torch.Tensor, k: int) -> torch.Tensor:
    # verl 0.9.1 compute_grpo_passk_outcome_advantage: the top sample gets
    # (r_max - r_second_max) / (std + 1e-6), Bessel-corrected std of the group; others 0.
    # tang_loo (= pkpo_loo1 at k = n) gives the numerator, 0 for every sample when the top ties.
    std = x.to(_WORK).std(-1, keepdim=True, correction=1)
    return _pkpo_loo1(x, x.shape[-1]).div_(std + 1e-6)


def _maxrl(x: torch.Tensor, k: int) -> torch.Tensor:
    # Published form (k = n - 1): (r_i - rbar) / (n rbar), 0 when rbar = 0. Other k: the
    # truncated harmonic mixture sum_{K<=k} (1/K) A^MaxPO_K, which it equals at k = n - 1.
    n = x.shape[-1]
    if k != n - 1:
        return _maxpo(x, _harmonic(k))
    x = x.to(_WORK)
    rbar = x.mean(-1, keepdim=True)
    some = rbar > 0
    return torch.where(some, (x - rbar) / (n * torch.where(some, rbar, torch.ones_like(rbar))),
                       torch.zeros_like(x))


def _grpo(x: torch.Tensor, k: int) -> torch.Tensor:
    x = x.to(_WORK)
    return (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True, correction=1) + 1e-6)


def _dr_grpo(x: torch.Tensor, k: int) -> torch.Tensor:
    x = x.to(_WORK)
    return x - x.mean(-1, keepdim=True)


def _rloo(x: torch.Tensor, k: int) -> torch.Tensor:
    x = x.to(_WORK)
    n = x.shape[-1]
    return n / (n - 1) * (x - x.mean(-1, keepdim=True))


# --------------------------------------------------------------------------- method table
def _need(lo: Callable[[int], int] | None = None, hi: Callable[[int], int] | None = None,
          why: str = "") -> Callable[[int, int], str | None]:
    """Build a check ``(n, k) -> message or None`` for ``lo(k) <= n`` and ``k <= hi(n)``."""

    def check(n: int, k: int) -> str | None:
        if lo is not None and n < lo(k):
            return why
        if hi is not None and k > hi(n):
            return why
        return None

    return check


@dataclass(frozen=True)
class MethodInfo:
    """What an advantage method computes and what it guarantees (every field named).

    ``unbiased``: E[sum_i A_i grad log pi(y_i)] equals ``scale``.
    ``centered``: sum_i A_i = 0 in every realised batch.
    ``offset``: E[A_i | y_i] - (K/B) A_K(y_i) for the max@K-unbiased methods (the unified view).
    ``mixtures``: ``k`` may also be a mapping ``{K: w_K}``; the advantages are then
    sum_K w_K A_K, unbiased for sum_K w_K grad J_K (the method is linear in its K-objective).
    """

    name: str
    description: str
    target: str  # "max@K", "pass@K", "mean reward (max@1)", or a mixture of them
    unbiased: bool
    centered: bool
    binary_only: bool
    scale: str  # what E[g_hat] equals
    offset: str
    requirement: str
    complexity: str
    fn: Callable[[torch.Tensor, Any], torch.Tensor] = field(repr=False)
    check: Callable[[int, int], str | None] = field(repr=False)
    mixtures: bool = False
    reference: str = ""  # the publication it implements, if any

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "description": self.description, "target": self.target,
            "unbiased": self.unbiased, "centered": self.centered, "binary_only": self.binary_only,
            "scale": self.scale, "offset": self.offset, "requirement": self.requirement,
            "complexity": self.complexity, "mixtures": self.mixtures, "reference": self.reference,
        }

    def __getitem__(self, key: str) -> Any:  # allow METHODS[name]["centered"]
        return self.as_dict()[key]


_K_LE_B1 = "k <= B - 1 samples per group"
_MAXPO_WHY = (
    "needs k <= B - 1 in every group: the Leave-Two-Out baseline of sample i is an unbiased "
    "max@k estimate from the other B - 1 samples, which needs at least k of them; at k = B no "
    "baseline can keep the gradient unbiased and the advantages exactly centered "
    "(use pkpo_loo1 or tang_loo for k = B)"
)
_HI_B1 = _need(hi=lambda n: n - 1, why=_MAXPO_WHY)


def _k_equals_b(n: int, k: int) -> str | None:
    return None if n == k else (
        "is defined only for k == B (the group is the K-sample set itself); for k < B its "
        "generalisation is pkpo_loo1")

METHODS: dict[str, MethodInfo] = {
    m.name: m
    for m in [
        MethodInfo(
            name="maxpo",
            description="MaxPO: PKPO signal minus the Leave-Two-Out baseline, "
            "A_i = s_i - (K/B) V_{-i}^{(K)} = K/(B-K) (Q_i - mean_j Q_j)",
            target="max@K", unbiased=True, centered=True, binary_only=False,
            scale="grad J_K", offset="0", requirement=_K_LE_B1, complexity="O(B log B)",
            mixtures=True, fn=_maxpo, check=_HI_B1,
            reference="Takashiro, Nishimori, Parmas et al. 2026, arXiv 2606.06080"),
        MethodInfo(
            name="maxpo_pairwise",
            description="MaxPO in its quadratic pairwise (antisymmetric) form: "
            "A_i = K/(B(B-1)) sum_{j != i} E_T[max(r_i, max T) - max(r_j, max T)]",
            target="max@K", unbiased=True, centered=True, binary_only=False,
            scale="grad J_K", offset="0", requirement=_K_LE_B1, complexity="O(B^2)",
            mixtures=True, fn=_linear_mixture(_maxpo_pairwise), check=_HI_B1,
            reference="Takashiro, Nishimori, Parmas et al. 2026, arXiv 2606.06080"),
        MethodInfo(
            name="canonical",
            description="Canonical finite-batch advantage Q_i - V_{-i}^{(K)} = (B/K) * maxpo",
            target="max@K", unbiased=True, centered=True, binary_only=False,
            scale="(B/K) grad J_K", offset="0", requirement=_K_LE_B1, complexity="O(B log B)",
            fn=_canonical, check=_need(hi=lambda n: n - 1, why="needs k <= B - 1 in every group "
                                       "(V_{-i} is a max@k estimate from the other B - 1 samples)")),
        MethodInfo(
            name="pkpo_s",
            description="PKPO's signal without a baseline, s_i = C(B,K)^-1 sum_{S contains i} max_S "
            "= (K/B) Q_i; sums to K * rho_hat",
            target="max@K", unbiased=True, centered=False, binary_only=False,
            scale="grad J_K", offset="(K/B) J_K", requirement="k <= B", complexity="O(B log B)",
            mixtures=True, fn=_linear_mixture(_pkpo_s),
            check=_need(hi=lambda n: n, why="needs k <= B samples per group "
                        "(no unbiased max@k estimate exists from fewer than k samples)"),
            reference="Walder and Karkhanis 2025 (PKPO), arXiv 2505.15201"),
        MethodInfo(
            name="pkpo_loo",
            description="PKPO leave-one-out baseline (PKPO eq. 29): s_i - K/(B-1) V_{-i}^{(K)}; "
            "sums to -K rho_hat/(B-1)",
            target="max@K", unbiased=True, centered=False, binary_only=False,
            scale="grad J_K", offset="-K J_K / (B (B-1))", requirement=_K_LE_B1, complexity="O(B log B)",
            mixtures=True, fn=_linear_mixture(_pkpo_loo),
            check=_need(hi=lambda n: n - 1, why="needs k <= B - 1 in every group "
                        "(its baseline is a max@k estimate from the other B - 1 samples)"),
            reference="Walder and Karkhanis 2025 (PKPO), arXiv 2505.15201"),
        MethodInfo(
            name="pkpo_loo1",
            description="PKPO loo-1 baseline (PKPO eq. 33): s_i - (K/B) V_{-i}^{(K-1)} "
            "= C(B,K)^-1 sum_{S contains i} [max_S - max_{S minus i}]; never negative",
            target="max@K", unbiased=True, centered=False, binary_only=False,
            scale="grad J_K", offset="(K/B) (J_K - J_{K-1})", requirement="2 <= k <= B",
            complexity="O(B log B)", mixtures=True, fn=_linear_mixture(_pkpo_loo1),
            check=lambda n, k: None if 2 <= k <= n else (
                "needs 2 <= k <= B samples per group (its baseline is a max@(k-1) estimate, "
                "undefined for k = 1: use rloo there)"),
            reference="Walder and Karkhanis 2025 (PKPO), arXiv 2505.15201"),
        MethodInfo(
            name="chen_passk",
            description="Chen et al. (2025) pass@k advantage: (Q_i - rho_hat)/sqrt(rho_hat (1 - rho_hat)), "
            "binary rewards; data-dependent scale per prompt",
            target="pass@K", unbiased=False, centered=True, binary_only=True,
            scale="not unbiased (per-prompt 1/sigma scale)", offset="n/a", requirement="k <= B, binary",
            complexity="O(B log B)", fn=_chen_passk,
            check=_need(hi=lambda n: n, why="needs k <= B samples per group"),
            reference="Chen et al. 2025, arXiv 2508.10751"),
        MethodInfo(
            name="tang_loo",
            description="Tang et al. (2025) leave-one-out max@K with the group as the K-set: "
            "the best sample gets r_(B) - r_(B-1), the rest 0 (pkpo_loo1 at k = B)",
            target="max@K", unbiased=True, centered=False, binary_only=False,
            scale="grad J_K", offset="(K/B) (J_K - J_{K-1})", requirement="k == B", complexity="O(B log B)",
            fn=_pkpo_loo1, check=_k_equals_b,
            reference="Tang et al. 2025, arXiv 2503.19595"),
        MethodInfo(
            name="grpo_passk",
            description="verl's grpo_passk as it ships (verl 0.9.1, norm_adv_by_std_in_grpo=True, its default): "
            "Tang et al.'s r_(B) - r_(B-1) for the best sample, divided by (std + 1e-6) of the group "
            "(Bessel-corrected), the rest 0",
            target="max@K", unbiased=False, centered=False, binary_only=False,
            scale="not unbiased (per-prompt 1/std scale)", offset="n/a", requirement="k == B >= 2",
            complexity="O(B log B)", fn=_grpo_passk,
            check=lambda n, k: _k_equals_b(n, k) or (
                None if n >= 2 else "needs at least 2 samples per group (verl refuses fewer; std of one sample)"),
            reference="Tang et al. 2025, arXiv 2503.19595; verl 0.9.1 compute_grpo_passk_outcome_advantage"),
        MethodInfo(
            name="maxrl",
            description="MaxRL (Tajwar et al. 2026), binary rewards: at k = B - 1 the published "
            "A_i = (r_i - mean r)/(B mean r), 0 for an all-wrong group; it equals sum_{K=1}^{B-1} (1/K) "
            "A^MaxPO_K. Other k (1 <= k <= B - 1) give the truncated harmonic mixture "
            "sum_{K=1}^{k} (1/K) A^MaxPO_K",
            target="sum_{K'<=K} (1/K') pass@K'", unbiased=True, centered=True, binary_only=True,
            scale="sum_{K'<=K} (1/K') grad J_K'", offset="n/a", requirement="1 <= k <= B - 1, binary",
            complexity="O(B) at k = B - 1, O(B log B) otherwise", fn=_maxrl,
            check=_need(hi=lambda n: n - 1, why="needs 1 <= k <= B - 1 in every group: k is the "
                        "truncation level T of the objective sum_{K<=T} (1/K) pass@K, whose K = B term "
                        "has no centred unbiased estimate from B samples (the published estimator is k = B - 1)"),
            reference="Tajwar et al. 2026, Maximum Likelihood Reinforcement Learning, arXiv 2602.02710"),
        MethodInfo(
            name="grpo",
            description="GRPO: (r_i - mean)/(std + 1e-6), Bessel-corrected std as in verl; ignores K",
            target="mean reward (max@1)", unbiased=False, centered=True, binary_only=False,
            scale="not unbiased (std normalisation)", offset="n/a", requirement="B >= 2", complexity="O(B)",
            fn=_grpo, check=_need(lo=lambda k: 2, why="needs at least 2 samples per group (std of one sample)"),
            reference="Shao et al. 2024 (DeepSeekMath), arXiv 2402.03300"),
        MethodInfo(
            name="dr_grpo",
            description="Dr. GRPO: r_i - mean (no std); ignores K; (B-1)/B times RLOO",
            target="mean reward (max@1)", unbiased=True, centered=True, binary_only=False,
            scale="((B-1)/B) * B * grad J_1", offset="n/a", requirement="B >= 1", complexity="O(B)",
            fn=_dr_grpo, check=lambda n, k: None,
            reference="Liu et al. 2025, arXiv 2503.20783"),
        MethodInfo(
            name="rloo",
            description="RLOO: r_i - mean_{j != i} r_j; ignores K",
            target="mean reward (max@1)", unbiased=True, centered=True, binary_only=False,
            scale="B * grad J_1", offset="n/a", requirement="B >= 2", complexity="O(B)",
            fn=_rloo, check=_need(lo=lambda k: 2, why="needs at least 2 samples per group (leave-one-out mean)"),
            reference="Ahmadian et al. 2024, arXiv 2402.14740"),
    ]
}


# --------------------------------------------------------------------------- dispatch
KSpec = int | Mapping[int, float]


def _prepare(rewards: Any, k: Any, mask: Any) -> tuple[torch.Tensor, torch.Tensor | None, torch.dtype,
                                                         int | Mixture, tuple[int, ...], torch.Tensor | None]:
    t, out_dtype = as_reward_tensor(rewards)
    k = check_k_spec(k)
    m = as_mask(mask, t.shape, t.device)
    batch_shape = tuple(t.shape[:-1])
    n = t.shape[-1]
    if not t.is_floating_point():
        t = t.to(_WORK)
    flat = t.reshape(-1, n)
    flat_mask = None if m is None else m.reshape(-1, n)
    check_finite(flat, flat_mask, batch_shape)
    counts = None
    if flat_mask is not None:
        counts = flat_mask.sum(-1)
        empty = (counts == 0).nonzero()
        if len(empty):
            raise ValueError(f"{group_label(int(empty[0]), batch_shape)} is empty: its mask has no real sample")
    return flat, flat_mask, out_dtype, k, batch_shape, counts


def _by_group_size(flat: torch.Tensor, flat_mask: torch.Tensor | None, counts: torch.Tensor | None,
                   fn: Callable[[torch.Tensor, int], torch.Tensor],
                   check: Callable[[int, torch.Tensor | None], None]) -> torch.Tensor:
    """Apply a dense per-group function to groups of possibly different sizes.

    ``fn(dense, n)`` maps ``(groups, n)`` rewards to per-sample values ``(groups, n)``
    or per-group values ``(groups,)``. Groups with the same number of real samples
    are packed into one dense tensor (real samples in their original order),
    computed together, and scattered back; masked samples get 0.
    """
    n_full = flat.shape[-1]
    if flat_mask is None or bool(flat_mask.all()):
        check(n_full, None)
        return fn(flat, n_full)
    out: torch.Tensor | None = None
    for n in torch.unique(counts).tolist():
        rows = (counts == n).nonzero().squeeze(-1)
        check(int(n), rows)
        row_mask = flat_mask[rows]
        res = fn(flat[rows][row_mask].view(len(rows), int(n)), int(n))
        per_sample = res.dim() == 2
        if out is None:
            out = torch.zeros(flat.shape if per_sample else flat.shape[:1], dtype=_WORK, device=flat.device)
        if per_sample:
            block = torch.zeros((len(rows), n_full), dtype=_WORK, device=flat.device)
            block[row_mask] = res.reshape(-1)
            res = block
        out[rows] = res
    assert out is not None  # every group has at least one real sample (checked in _prepare)
    return out


def _size_error(name: str, why: str, n: int, k: int | Mixture, rows: torch.Tensor | None,
                batch_shape: tuple[int, ...], key: int | None = None) -> ValueError:
    where = ("every group has" if rows is None else f"{group_label(int(rows[0]), batch_shape)} has")
    what = f"k = {k}" if isinstance(k, int) else f"the mixture key K = {key} (k = {dict(k)})"
    return ValueError(f"method '{name}' {why}; {where} B = {n} real samples and {what}")


def _checker(name: str, check: Callable[[int, int], str | None], k: int | Mixture,
             batch_shape: tuple[int, ...]) -> Callable[[int, torch.Tensor | None], None]:
    """A per-group-size check that raises for ``k`` (every key of a mixture) not suiting size ``n``.

    Every method accepts an interval of k at each group size, so a mixture's smallest
    and largest keys decide for all of them (keys are sorted).
    """
    keys = [k] if isinstance(k, int) else sorted({k[0][0], k[-1][0]})

    def run(n: int, rows: torch.Tensor | None) -> None:
        for key in keys:
            msg = check(n, key)
            if msg:
                raise _size_error(name, msg, n, k, rows, batch_shape, None if isinstance(k, int) else key)

    return run


def advantages(rewards: Any, k: KSpec, method: str = "maxpo", mask: Any = None) -> torch.Tensor:
    r"""Per-sample policy-gradient advantages for the max@K objective (or pass@K), or a mixture.

    Args:
        rewards: ``(..., B)`` rewards; the last dimension is the group of ``B``
            i.i.d. samples of one prompt, leading dimensions are a batch.
        k: the K of max@K (ignored by ``grpo``, ``dr_grpo``, ``rloo``; the truncation
            level for ``maxrl``), or, for the methods with ``METHODS[m].mixtures``, a
            mapping ``{K: w_K}`` for the objective :math:`\sum_K w_K J_K`: the
            advantages are :math:`\sum_K w_K A^{(K)}`, unbiased for
            :math:`\sum_K w_K \nabla J_K` (weights may be negative). For ``maxpo`` this
            costs about one single-K call (one sort; the rank weights are combined
            before the pass) and stays exactly centred.
        method: a key of :data:`METHODS`; default ``"maxpo"``, the Leave-Two-Out
            advantage :math:`A_i = \frac{K}{B-K}(Q_i - \bar Q)`, unbiased and
            exactly centered, :math:`O(B \log B)`.
        mask: optional bool tensor of the same shape, ``True`` = real sample, for
            groups of different sizes; masked entries get advantage 0.

    Returns:
        A tensor shaped like ``rewards`` on its device, in its floating dtype
        (float64 for integer, bool, list or numpy input), without autograd graph.

    Raises:
        ValueError: unknown method, ``k < 1``, ``k`` (or a mixture key) too large for
            the method in some group (the message names it), a mixture for a method
            that does not take one, an empty mixture, non-integer or bool mixture
            keys, non-finite weights, non-finite rewards, empty groups, bad mask,
            non-binary rewards for a binary method.
        TypeError: non-numeric rewards or non-integer ``k``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
    info = METHODS[method]
    flat, flat_mask, out_dtype, spec, batch_shape, counts = _prepare(rewards, k, mask)
    if not isinstance(spec, int) and not info.mixtures:
        raise ValueError(f"method '{method}' does not take a mixture k = {{K: w_K}} (it is not linear in "
                         f"its K-objective); methods that do: "
                         f"{', '.join(m for m, i in METHODS.items() if i.mixtures)}")
    if info.binary_only:
        check_binary(flat, flat_mask, batch_shape, method)
    with torch.no_grad():
        out = _by_group_size(flat, flat_mask, counts, lambda x, n: info.fn(x, spec),
                             _checker(method, info.check, spec, batch_shape))
    shape = tuple(batch_shape) + (flat.shape[-1],)
    return out.to(out_dtype).reshape(shape)


def _estimate(rewards: Any, k: KSpec, mask: Any, binary: bool) -> torch.Tensor:
    flat, flat_mask, out_dtype, spec, batch_shape, counts = _prepare(rewards, k, mask)
    name = "passk_estimate" if binary else "maxk_estimate"
    if binary:
        check_binary(flat, flat_mask, batch_shape, name)
    why = "needs k <= B samples per group (no unbiased max@k or pass@k estimate exists from fewer than k samples)"

    def rho(x: torch.Tensor, n: int) -> torch.Tensor:
        xs = torch.sort(x, dim=-1).values.to(_WORK)
        w = (_rank_weights(n, spec, xs.device).maxk if isinstance(spec, int)
             else _mixture_maxk_weights(n, spec, xs.device))
        top = xs[..., -1]
        return ((xs - top.unsqueeze(-1)) * w).sum(-1) + top * w.sum()

    with torch.no_grad():
        out = _by_group_size(flat, flat_mask, counts, rho,
                             _checker(name, lambda n, kk: why if kk > n else None, spec, batch_shape))
    return out.to(out_dtype).reshape(batch_shape)


def maxk_estimate(rewards: Any, k: KSpec, mask: Any = None) -> torch.Tensor:
    r"""Unbiased max@K estimate per group: the U-statistic over all K-subsets.

    :math:`\hat\rho = \sum_{i=1}^{B} \binom{i-1}{K-1}\binom{B}{K}^{-1} r_{(i)}`
    with ascending rewards; the weights sum to one. Needs ``k <= B`` in every
    group. ``k`` may be a mapping ``{K: w_K}``: then the unbiased estimate of
    :math:`\sum_K w_K J_K`, :math:`\sum_K w_K \hat\rho_K`, from one sort.
    Returns shape ``rewards.shape[:-1]``. :math:`O(B \log B)`.
    """
    return _estimate(rewards, k, mask, binary=False)


def passk_estimate(correct: Any, k: KSpec, mask: Any = None) -> torch.Tensor:
    r"""Unbiased pass@K estimate per group of binary rewards with ``c`` correct:
    :math:`1 - \binom{B-c}{K}/\binom{B}{K}` (the max@K estimate of 0/1 rewards).
    Needs ``k <= B``; ``k`` may be a mixture ``{K: w_K}`` as in :func:`maxk_estimate`;
    non-binary input raises ``ValueError``."""
    return _estimate(correct, k, mask, binary=True)
