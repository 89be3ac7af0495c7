r"""Softmax bandits with stochastic rewards: exact max@K objective, its gradient, and sampling.

A bandit has ``n`` arms; arm ``a`` pays a reward drawn from its own distribution
with CDF :math:`F_a`. The policy is :math:`\pi = \mathrm{softmax}(\theta)` over
arms. One *sample* picks an arm from :math:`\pi` and draws its reward, so a
sample's reward has the mixture CDF :math:`F(x) = \sum_a \pi_a F_a(x)`.

Exact objective (order statistics: :math:`P(\max_{j \le K} R_j \le x) = F(x)^K`):

.. math::

    J_K(\theta) = E[\max(R_1, \dots, R_K)]
      = x_0 + \int_{x_0}^{\infty} (1 - F(x)^K)\,dx - \int_{-\infty}^{x_0} F(x)^K\,dx

for any :math:`x_0`. With :math:`\partial F / \partial \theta_b = \pi_b (F_b - F)`:

.. math::

    \frac{\partial J_K}{\partial \theta_b} = K \pi_b \int_{-\infty}^{\infty} F(x)^{K-1} (F(x) - F_b(x))\,dx ,

an integral that converges at both ends (for ``K = 1`` it is
:math:`\pi_b (E[R \mid b] - E[R])`). Both integrals are evaluated by composite
Gauss-Legendre quadrature in float64 on panels whose ends include every atom of
every arm (where :math:`F` jumps) and a ladder of quantiles of every continuous
arm; the two infinite tails are mapped to finite intervals. For arms with only
atoms the integrands are piecewise constant, so the quadrature is exact up to
rounding; for Gaussian and log-normal arms it agrees with closed forms to about
``1e-12`` (see ``tests/test_bandits.py``).

The score of a sample that picked arm ``a`` is
:math:`\nabla_\theta \log \pi_a = e_a - \pi`, so a group of ``B`` samples with
advantages :math:`A_i` gives the gradient estimate
:math:`\hat g = \sum_i A_i (e_{a_i} - \pi)` (:func:`gradient_estimates`).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

import numpy as np
import torch

__all__ = [
    "Arm",
    "Bandit",
    "Discrete",
    "Gaussian",
    "LogNormal",
    "bernoulli",
    "gradient_estimates",
    "problem",
    "score_sums",
    "PROBLEMS",
]

_F64 = torch.float64
#: standard-normal quantiles at which continuous arms place quadrature panel ends
_Z_LADDER = (-9.0, -7.0, -5.0, -4.0, -3.0, -2.5, -2.0, -1.5, -1.0, -0.5, 0.0,
             0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.0, 9.0)
_PANEL_NODES = 24   # Gauss-Legendre nodes per finite panel
_TAIL_NODES = 64    # Gauss-Legendre nodes per mapped infinite tail
_U_EPS = 2.0 ** -54  # keeps inverse-CDF sampling away from u = 0 and u = 1


class Arm(Protocol):
    """A reward distribution: CDF, inverse CDF and the points where it needs care."""

    def cdf(self, x: torch.Tensor) -> torch.Tensor:
        """P(R <= x) elementwise, float64."""
        ...

    def sf(self, x: torch.Tensor) -> torch.Tensor:
        """P(R > x) elementwise, float64, accurate where it is tiny."""
        ...

    def icdf(self, u: torch.Tensor) -> torch.Tensor:
        """Generalised inverse CDF (quantile function) for ``u`` in (0, 1), float64."""
        ...

    def knots(self) -> list[float]:
        """Atoms (where the CDF jumps) and characteristic points for quadrature panels."""
        ...

    @property
    def mean(self) -> float:
        """E[R]."""
        ...

    @property
    def binary(self) -> bool:
        """True when the rewards are in {0, 1}."""
        ...

    def describe(self) -> str:
        """Short human-readable description."""
        ...


@dataclass(frozen=True)
class Discrete:
    """Reward ``values[j]`` with probability ``probs[j]`` (a finite distribution)."""

    values: tuple[float, ...]
    probs: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.values) != len(self.probs) or not self.values:
            raise ValueError("Discrete needs as many probabilities as values (at least one)")
        if any(p < 0 for p in self.probs) or not math.isclose(sum(self.probs), 1.0, abs_tol=1e-12):
            raise ValueError(f"Discrete probabilities must be >= 0 and sum to 1, got {self.probs}")
        if len(set(self.values)) != len(self.values):
            raise ValueError(f"Discrete values must be distinct, got {self.values}")

    def _sorted(self) -> tuple[torch.Tensor, torch.Tensor]:
        order = np.argsort(self.values)
        v = torch.tensor([self.values[i] for i in order], dtype=_F64)
        p = torch.tensor([self.probs[i] for i in order], dtype=_F64)
        return v, p

    def cdf(self, x: torch.Tensor) -> torch.Tensor:
        v, p = self._sorted()
        cum = torch.cat([torch.zeros(1, dtype=_F64), torch.cumsum(p, 0)])
        return cum[torch.searchsorted(v, x.contiguous(), right=True)].clamp(0.0, 1.0)

    def sf(self, x: torch.Tensor) -> torch.Tensor:
        v, p = self._sorted()
        tail = torch.cat([torch.flip(torch.cumsum(torch.flip(p, (0,)), 0), (0,)), torch.zeros(1, dtype=_F64)])
        return tail[torch.searchsorted(v, x.contiguous(), right=True)].clamp(0.0, 1.0)

    def icdf(self, u: torch.Tensor) -> torch.Tensor:
        v, p = self._sorted()
        cum = torch.cumsum(p, 0)
        cum[-1] = 1.0
        return v[torch.searchsorted(cum, u.contiguous(), right=True).clamp(max=len(v) - 1)]

    def knots(self) -> list[float]:
        return [float(v) for v, p in zip(self.values, self.probs) if p > 0]

    @property
    def mean(self) -> float:
        return float(sum(v * p for v, p in zip(self.values, self.probs)))

    @property
    def binary(self) -> bool:
        return all(v in (0.0, 1.0) for v, p in zip(self.values, self.probs) if p > 0)

    def describe(self) -> str:
        return "discrete{" + ", ".join(f"{v:g}: {p:g}" for v, p in zip(self.values, self.probs)) + "}"


def bernoulli(p: float) -> Discrete:
    """Reward 1 with probability ``p``, else 0 (a pass@K arm)."""
    return Discrete((0.0, 1.0), (1.0 - p, p))


@dataclass(frozen=True)
class Gaussian:
    """Normal rewards N(mu, sd^2): a light (Gaussian) upper tail."""

    mu: float
    sd: float

    def cdf(self, x: torch.Tensor) -> torch.Tensor:
        return torch.special.ndtr((x - self.mu) / self.sd)

    def sf(self, x: torch.Tensor) -> torch.Tensor:
        return torch.special.ndtr((self.mu - x) / self.sd)

    def icdf(self, u: torch.Tensor) -> torch.Tensor:
        return self.mu + self.sd * torch.special.ndtri(u)

    def knots(self) -> list[float]:
        return [self.mu + self.sd * z for z in _Z_LADDER]

    @property
    def mean(self) -> float:
        return self.mu

    @property
    def binary(self) -> bool:
        return False

    def describe(self) -> str:
        return f"N({self.mu:g}, {self.sd:g}^2)"


@dataclass(frozen=True)
class LogNormal:
    """exp(N(mu, sigma^2)) rewards: a heavy (sub-exponential) upper tail, all moments finite."""

    mu: float
    sigma: float

    def cdf(self, x: torch.Tensor) -> torch.Tensor:
        pos = x > 0
        z = (torch.log(torch.where(pos, x, torch.ones_like(x))) - self.mu) / self.sigma
        return torch.where(pos, torch.special.ndtr(z), torch.zeros_like(x))

    def sf(self, x: torch.Tensor) -> torch.Tensor:
        pos = x > 0
        z = (torch.log(torch.where(pos, x, torch.ones_like(x))) - self.mu) / self.sigma
        return torch.where(pos, torch.special.ndtr(-z), torch.ones_like(x))

    def icdf(self, u: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.mu + self.sigma * torch.special.ndtri(u))

    def knots(self) -> list[float]:
        return [0.0] + [math.exp(self.mu + self.sigma * z) for z in _Z_LADDER]

    @property
    def mean(self) -> float:
        return math.exp(self.mu + self.sigma ** 2 / 2)

    @property
    def binary(self) -> bool:
        return False

    def describe(self) -> str:
        return f"LogNormal({self.mu:g}, {self.sigma:g}^2)"


# --------------------------------------------------------------------------- quadrature
@lru_cache(maxsize=8)
def _gauss_legendre(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and weights on (0, 1)."""
    x, w = np.polynomial.legendre.leggauss(n)
    return torch.tensor((x + 1) / 2, dtype=_F64), torch.tensor(w / 2, dtype=_F64)


@dataclass(frozen=True)
class _Grid:
    """Quadrature nodes ``x`` with weights ``w``; ``upper`` marks nodes right of ``x0``."""

    x: torch.Tensor
    w: torch.Tensor
    upper: torch.Tensor
    x0: float


def _quadrature_grid(knots: Sequence[float]) -> _Grid:
    ks = np.unique(np.asarray(sorted(knots), dtype=np.float64))
    t, wt = _gauss_legendre(_PANEL_NODES)
    lo = torch.tensor(ks[:-1], dtype=_F64).unsqueeze(-1)
    hi = torch.tensor(ks[1:], dtype=_F64).unsqueeze(-1)
    xs = [(lo + (hi - lo) * t).reshape(-1)]
    ws = [((hi - lo) * wt).reshape(-1)]
    # tails: x = edge -/+ s * u / (1 - u), dx = s / (1 - u)^2 du, u in (0, 1)
    u, wu = _gauss_legendre(_TAIL_NODES)
    s = max(1.0, float(ks[-1] - ks[0])) if len(ks) > 1 else 1.0
    jac = s / (1 - u) ** 2
    xs_low = ks[0] - s * u / (1 - u)
    xs_high = ks[-1] + s * u / (1 - u)
    x = torch.cat([xs_low, xs[0], xs_high])
    w = torch.cat([wu * jac, ws[0], wu * jac])
    return _Grid(x=x, w=w, upper=x > ks[0], x0=float(ks[0]))


# --------------------------------------------------------------------------- bandit
@dataclass(frozen=True)
class Bandit:
    """A softmax policy over arms with stochastic rewards.

    ``logits`` are the policy parameters :math:`\\theta`; ``probs`` is
    :math:`\\pi = \\mathrm{softmax}(\\theta)`.
    """

    name: str
    arms: tuple[Arm, ...]
    logits: tuple[float, ...]
    description: str = ""
    _grid: _Grid = field(init=False, repr=False, compare=False)
    _cache: dict = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.arms) != len(self.logits) or len(self.arms) < 2:
            raise ValueError("a bandit needs at least two arms and one logit per arm")
        knots = [k for arm in self.arms for k in arm.knots()]
        object.__setattr__(self, "_grid", _quadrature_grid(knots))

    @property
    def n_arms(self) -> int:
        return len(self.arms)

    @property
    def binary(self) -> bool:
        """True when every arm pays 0 or 1 (pass@K)."""
        return all(arm.binary for arm in self.arms)

    def theta(self) -> torch.Tensor:
        return torch.tensor(self.logits, dtype=_F64)

    @property
    def probs(self) -> torch.Tensor:
        return torch.softmax(self.theta(), 0)

    def arm_cdfs(self, x: torch.Tensor) -> torch.Tensor:
        """``(n_arms, len(x))``: :math:`F_a(x)` for every arm."""
        return torch.stack([arm.cdf(x) for arm in self.arms])

    def arm_sfs(self, x: torch.Tensor) -> torch.Tensor:
        """``(n_arms, len(x))``: :math:`1 - F_a(x)` for every arm, computed directly."""
        return torch.stack([arm.sf(x) for arm in self.arms])

    def arm_means(self) -> torch.Tensor:
        return torch.tensor([arm.mean for arm in self.arms], dtype=_F64)

    def _tables(self) -> tuple[_Grid, torch.Tensor, torch.Tensor]:
        """Quadrature grid and, at its nodes, :math:`F_a` (lower side) / :math:`1 - F_a` (upper side).

        Right of ``x0`` every quantity is computed from survival functions, so
        :math:`1 - F^K` keeps its relative accuracy far into the upper tail.
        """
        g = self._grid
        if self._cache.get("tables") is None:
            self._cache["tables"] = (self.arm_cdfs(g.x), self.arm_sfs(g.x))
        fa, sa = self._cache["tables"]
        return g, fa, sa

    # ---- exact objective and gradient
    def objective(self, k: int, logits: torch.Tensor | None = None) -> torch.Tensor:
        r"""Exact :math:`J_K = x_0 + \int_{x_0}^\infty (1 - F^K) - \int_{-\infty}^{x_0} F^K`.

        ``logits`` (optional, may require grad) replaces the bandit's own; the
        result is a differentiable float64 scalar.
        """
        _check_k(k)
        g, fa, sa = self._tables()
        theta = self.theta() if logits is None else logits
        pi = torch.softmax(theta.to(_F64), 0)
        f = (pi @ fa).clamp(0.0, 1.0)
        s = (pi @ sa).clamp(0.0, 1.0)
        # 1 - F^K: from S = 1 - F where S is small (keeps relative accuracy far in the upper tail)
        small = g.upper & (s < 0.5)
        via_s = -torch.expm1(k * torch.log1p(-torch.where(small, s, torch.zeros_like(s))))
        upper = torch.where(small, via_s, 1.0 - f ** k)
        integrand = torch.where(g.upper, upper, -(f ** k))
        return g.x0 + (g.w * integrand).sum()

    def gradient(self, k: int) -> torch.Tensor:
        r"""Exact :math:`\partial J_K / \partial\theta_b = K \pi_b \int F^{K-1}(F - F_b)\,dx` (float64).

        Right of ``x0`` the integrand is evaluated as :math:`(1-S)^{K-1}(S_b - S)` with
        survival functions :math:`S = 1 - F`.
        """
        _check_k(k)
        g, fa, sa = self._tables()
        pi = self.probs
        f = (pi @ fa).clamp(0.0, 1.0)
        s = (pi @ sa).clamp(0.0, 1.0)
        up = (1.0 - s) ** (k - 1) * (sa - s)
        low = f ** (k - 1) * (f - fa)
        integrand = torch.where(g.upper, up, low)
        return k * pi * (integrand * g.w).sum(-1)

    def objectives(self, ks: Sequence[int]) -> dict[int, float]:
        """``{k: J_k}`` for several ``k``."""
        return {int(k): float(self.objective(int(k))) for k in ks}

    # ---- sampling
    def sample(self, n: int, b: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` groups of ``b`` i.i.d. samples: ``(arms (n, b) int64, rewards (n, b) float64)``.

        Arms by inverse CDF of :math:`\\pi`, rewards by each arm's inverse CDF, from
        two uniform tensors drawn from ``generator`` (deterministic given its seed).
        """
        u_arm = torch.rand((n, b), generator=generator, dtype=_F64)
        u_rew = torch.rand((n, b), generator=generator, dtype=_F64).clamp(_U_EPS, 1 - _U_EPS)
        cum = torch.cumsum(self.probs, 0)
        cum[-1] = 1.0
        arms = torch.searchsorted(cum, u_arm, right=True).clamp(max=self.n_arms - 1)
        rewards = torch.empty((n, b), dtype=_F64)
        for a, arm in enumerate(self.arms):
            sel = arms == a
            if bool(sel.any()):
                rewards[sel] = arm.icdf(u_rew[sel])
        return arms, rewards

    def outcomes(self) -> list[tuple[int, float, float]]:
        """``(arm, reward, q)`` for every outcome of every arm, ``q`` its probability within the arm.

        Only for bandits whose arms all have finitely many outcomes (:class:`Discrete`); a sample
        then is one of these outcomes, with probability ``pi[arm] * q``, which is how the tests
        and the book enumerate a bandit exactly.
        """
        out: list[tuple[int, float, float]] = []
        for a, arm in enumerate(self.arms):
            if not isinstance(arm, Discrete):
                raise ValueError(f"arm {a} ({arm.describe()}) has infinitely many outcomes")
            out.extend((a, float(v), float(q)) for v, q in zip(arm.values, arm.probs) if q > 0)
        return out

    def summary(self) -> list[dict[str, object]]:
        """One row per arm: its distribution, policy probability, mean."""
        pi = self.probs
        return [{"arm": a, "reward": arm.describe(), "pi": float(pi[a]), "mean": arm.mean}
                for a, arm in enumerate(self.arms)]


def _check_k(k: int) -> None:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")


def gradient_estimates(arms: torch.Tensor, adv: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    r"""Per-group gradient estimates :math:`\hat g = \sum_i A_i (e_{a_i} - \pi)`.

    ``arms`` and ``adv`` are ``(..., B)``; returns ``(..., n_arms)`` float64. The
    estimate lies in the sum-zero subspace (every score does).
    """
    n = probs.shape[-1]
    adv = adv.to(_F64)
    per_arm = torch.zeros(adv.shape[:-1] + (n,), dtype=_F64).scatter_add_(-1, arms, adv)
    return per_arm - adv.sum(-1, keepdim=True) * probs.to(_F64)


def score_sums(arms: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    r""":math:`S = \sum_i (e_{a_i} - \pi)`, a zero-mean vector: adding a constant ``c`` to every
    advantage of a group adds ``c * S`` to :math:`\hat g` (unbiasedness is kept)."""
    return gradient_estimates(arms, torch.ones(arms.shape, dtype=_F64), probs)


# --------------------------------------------------------------------------- problems
def _linspace(a: float, b: float, n: int) -> list[float]:
    return [float(v) for v in np.linspace(a, b, n)]


def problem(name: str, n_arms: int = 16) -> Bandit:
    """A named bandit of :data:`PROBLEMS` with ``n_arms`` arms.

    In each the policy starts tilted towards the arms that are best *on average*
    (as a policy trained for pass@1 would be) while the arms that raise max@K are
    less likely:

    * ``bernoulli``: success probabilities ``0.2 * (a / (n-1))^2``; the policy prefers the
      weak arms (a hard prompt for pass@K).
    * ``light``: Gaussian arms, means from 1.0 down to 0.4 and standard deviations
      from 0.05 up to 0.5 (light upper tails; the noisy arms win max@K for large K).
    * ``heavy``: log-normal arms, ``mu`` from 0 down to -1 and ``sigma`` from 0.25 up to
      1.25 (heavy upper tails).
    * ``jackpot``: ``n-1`` steady Gaussian arms N(mu, 0.1^2), ``mu`` from 0.6 down to 0.4, and
      one rare jackpot arm that pays 5 with probability 0.05 and 0 otherwise (mean 0.25),
      which the policy picks rarely (logit -2).
    """
    if name not in PROBLEMS:
        raise ValueError(f"unknown bandit problem {name!r}; choose one of {sorted(PROBLEMS)}")
    n = int(n_arms)
    if n < 2:
        raise ValueError("n_arms must be >= 2")
    tilt = _linspace(1.0, -1.0, n)  # arm 0 most likely
    arms: tuple[Arm, ...]
    if name == "bernoulli":
        arms = tuple(bernoulli(0.2 * (a / (n - 1)) ** 2) for a in range(n))
        logits = _linspace(-1.0, 1.0, n)  # the weakest arms are most likely
    elif name == "light":
        arms = tuple(Gaussian(mu, sd) for mu, sd in zip(_linspace(1.0, 0.4, n), _linspace(0.05, 0.5, n)))
        logits = tilt
    elif name == "heavy":
        arms = tuple(LogNormal(mu, s) for mu, s in zip(_linspace(0.0, -1.0, n), _linspace(0.25, 1.25, n)))
        logits = tilt
    else:  # jackpot
        steady: list[Arm] = [Gaussian(mu, 0.1) for mu in _linspace(0.6, 0.4, n - 1)]
        arms = tuple(steady + [Discrete((0.0, 5.0), (0.95, 0.05))])
        logits = _linspace(1.0, -1.0, n - 1) + [-2.0]
    return Bandit(name=name, arms=arms, logits=tuple(logits), description=PROBLEMS[name])


#: Named bandits (see :func:`problem`).
PROBLEMS: dict[str, str] = {
    "bernoulli": "Bernoulli arms (pass@K): success rates 0 to 0.2, policy tilted to the weak arms",
    "light": "Gaussian arms (light upper tails): high-mean low-noise arms vs low-mean noisy arms",
    "heavy": "log-normal arms (heavy upper tails): high-median arms vs heavy-tailed arms",
    "jackpot": "steady N(0.4..0.6, 0.1^2) arms and one rare jackpot arm (5 w.p. 0.05), picked rarely",
}
