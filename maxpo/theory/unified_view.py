r"""The unified view of max@K advantage estimators, computed by exact enumeration.

For a categorical policy with a few actions, rational probabilities and
rational rewards, every B-tuple of actions is enumerated with its exact
probability (:func:`maxpo.reference.enumerate_batches`), and each method's
advantages are computed from their *definitions* with fractions
(:func:`maxpo.reference.advantages`). From that, with no sampling and no
tolerance:

* :func:`conditional_mean` -- :math:`E[A_i \mid y_i = a]` for every action ``a``;
* :func:`gradient_scale` -- the :math:`\lambda` with :math:`E[\hat g] = \lambda \nabla J_{K'}`
  (``None`` if :math:`E[\hat g]` is not parallel to :math:`\nabla J_{K'}`);
* :func:`offset` -- the constant ``c`` in
  :math:`E[A_i \mid y_i] = \lambda \tfrac{K}{B} A_K(y_i) + c`
  (``None`` if no constant works), with :math:`A_K(y) = Q_K(y) - J_K` the true
  max@K advantage (:func:`maxpo.reference.true_maxk_advantage`);
* :func:`identify_offset`, :func:`identify_scale` -- which formula in terms of
  ``B``, ``K``, :math:`J_K`, :math:`J_{K-1}` a computed number equals;
* :func:`method_table` -- one row per method of :data:`maxpo.METHODS`, every cell
  computed from the enumerations above.

:func:`gradient_moments` computes the exact mean and total variance of the
gradient estimate in float64 (all batches at once, through
:func:`maxpo.advantages`), for larger batches than the fraction code handles;
:func:`shifted_variance` gives the total variance after adding a constant to
every advantage, as a parabola in that constant.
Costs are exponential in B: keep ``len(probs) ** B`` to a few thousand.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import TypedDict

import torch

import maxpo
from maxpo import reference

__all__ = [
    "CategoricalPolicy",
    "FORMULA_TEX",
    "FORMULA_TEXT",
    "OFFSET_FORMULAS",
    "SCALE_FORMULAS",
    "advantage_rows",
    "batch_sums",
    "conditional_mean",
    "expected_gradient",
    "formula_math",
    "gradient_moments",
    "gradient_scale",
    "identify_offset",
    "identify_scale",
    "method_table",
    "offset",
    "reward_type",
    "shifted_variance",
]

Number = int | float | Fraction


@dataclass(frozen=True)
class CategoricalPolicy:
    """A policy over a few actions with exact probabilities and one reward per action."""

    probs: tuple[Fraction, ...]
    rewards: tuple[Fraction, ...]

    def __post_init__(self) -> None:
        if len(self.probs) != len(self.rewards) or not self.probs:
            raise ValueError("need one probability per action and at least one action")
        if sum(self.probs) != 1 or any(p <= 0 for p in self.probs):
            raise ValueError(f"probabilities must be positive and sum to 1, got {self.probs}")

    @classmethod
    def of(cls, probs: Iterable[Number | str], rewards: Iterable[Number | str]) -> CategoricalPolicy:
        """Build from numbers or strings such as ``"1/3"`` (converted exactly)."""
        return cls(tuple(Fraction(p) for p in probs), tuple(Fraction(r) for r in rewards))

    @property
    def n_actions(self) -> int:
        return len(self.probs)

    @property
    def binary(self) -> bool:
        """True when every reward is 0 or 1 (the pass@K setting)."""
        return all(r in (0, 1) for r in self.rewards)

    def objective(self, k: int) -> Fraction:
        r""":math:`J_K`, from the reward CDF (:math:`J_0 = 0` by convention, the max of nothing)."""
        return Fraction(0) if k == 0 else reference.maxk_objective_cdf(self.probs, self.rewards, k)

    def objective_gradient(self, k: int) -> list[Fraction]:
        r""":math:`\nabla J_K` with respect to the logits, by enumeration."""
        return reference.maxk_objective_gradient(self.probs, self.rewards, k)

    def true_advantage(self, k: int) -> list[Fraction]:
        r""":math:`A_K(a) = Q_K(a) - J_K` for every action ``a``."""
        return reference.true_maxk_advantage(self.probs, self.rewards, k)


@lru_cache(maxsize=64)
def _batches(policy: CategoricalPolicy, b: int) -> tuple:
    return tuple(reference.enumerate_batches(policy.probs, policy.rewards, b))


@lru_cache(maxsize=512)
def _rows(policy: CategoricalPolicy, b: int, k: int, method: str) -> tuple:
    cache: dict[tuple, list] = {}
    rows = []
    for _, _, rewards in _batches(policy, b):
        key = tuple(rewards)
        if key not in cache:
            cache[key] = reference.advantages(rewards, k, method)
        rows.append(cache[key])
    return tuple(rows)


def advantage_rows(policy: CategoricalPolicy, b: int, k: int, method: str) -> tuple:
    """The exact advantages (from :mod:`maxpo.reference`) of every enumerated batch, in order."""
    return _rows(policy, b, k, method)


def conditional_mean(policy: CategoricalPolicy, b: int, k: int, method: str) -> list[Fraction]:
    r""":math:`E[A_i \mid y_i = a]` for every action (exact; samples are exchangeable)."""
    return reference.conditional_mean_advantage(_batches(policy, b), advantage_rows(policy, b, k, method),
                                                policy.n_actions)


def expected_gradient(policy: CategoricalPolicy, b: int, k: int, method: str) -> list[Fraction]:
    r""":math:`E[\sum_i A_i \nabla\log\pi(y_i)]` with respect to the logits (exact)."""
    return reference.expected_gradient(policy.probs, _batches(policy, b), advantage_rows(policy, b, k, method))


def _ratio(num: Sequence[Fraction], den: Sequence[Fraction], rel_tol: float) -> Fraction | None:
    """The lambda with num == lambda * den componentwise, or None (den must not vanish)."""
    pivot = max(range(len(den)), key=lambda j: abs(den[j]))
    if den[pivot] == 0:
        return None
    lam = num[pivot] / den[pivot]
    scale = max(abs(v) for v in den)
    ok = all(abs(n - lam * d) <= rel_tol * abs(lam) * scale for n, d in zip(num, den))
    return lam if ok else None


def _tolerance(method: str) -> float:
    # grpo and chen_passk involve a square root: the reference returns floats, whose
    # exact binary values carry rounding; everything else is exact.
    return 1e-9 if method in ("grpo", "chen_passk", "grpo_passk") else 0.0


def gradient_scale(policy: CategoricalPolicy, b: int, k: int, method: str,
                   target_k: int | dict[int, Fraction] | None = None) -> Fraction | None:
    r"""The :math:`\lambda` with :math:`E[\hat g] = \lambda \nabla J_{K'}` (:math:`K' =` ``target_k``, default K).

    ``target_k`` may be a mixture ``{K': w}``: then the target is :math:`\sum w \nabla J_{K'}`.
    ``None`` when the expected gradient is not parallel to the target.
    """
    target = {k if target_k is None else target_k: Fraction(1)} if not isinstance(target_k, dict) else target_k
    grad = [Fraction(0)] * policy.n_actions
    for kk, w in target.items():
        grad = [g + w * d for g, d in zip(grad, policy.objective_gradient(kk))]
    return _ratio(expected_gradient(policy, b, k, method), grad, _tolerance(method))


def offset(policy: CategoricalPolicy, b: int, k: int, method: str, scale: Fraction = Fraction(1)) -> Fraction | None:
    r"""The constant ``c`` in :math:`E[A_i \mid y_i = a] = \lambda \frac{K}{B} A_K(a) + c` for every action.

    ``scale`` is :math:`\lambda`. Returns ``None`` if the difference is not the
    same for every action (the conditional mean is not affine in :math:`A_K`).
    """
    cm = conditional_mean(policy, b, k, method)
    ak = policy.true_advantage(k)
    diffs = [m - scale * Fraction(k, b) * a for m, a in zip(cm, ak)]
    tol = _tolerance(method) * max(Fraction(1), max(abs(d) for d in diffs))
    return diffs[0] if all(abs(d - diffs[0]) <= tol for d in diffs) else None


def batch_sums(policy: CategoricalPolicy, b: int, k: int, method: str) -> list[Fraction]:
    r""":math:`\sum_i A_i` for every enumerated batch (exact for the exact methods)."""
    return [sum((Fraction(a) for a in row), Fraction(0)) for row in advantage_rows(policy, b, k, method)]


# --------------------------------------------------------------------------- formulas
#: Candidate offsets ``c`` (keys spelled as in :data:`maxpo.METHODS`' ``offset`` field).
OFFSET_FORMULAS: dict[str, Callable[[int, int, Callable[[int], Fraction]], Fraction]] = {
    "0": lambda b, k, j: Fraction(0),
    "(K/B) J_K": lambda b, k, j: Fraction(k, b) * j(k),
    "(K/B) (J_K - J_{K-1})": lambda b, k, j: Fraction(k, b) * (j(k) - j(k - 1)),
    "-K J_K / (B (B-1))": lambda b, k, j: -Fraction(k, b * (b - 1)) * j(k),
}

def _harmonic(k: int) -> dict[int, Fraction]:
    return {j: Fraction(1, j) for j in range(1, k + 1)}


#: Candidate gradient scales: label -> (which J the gradient is of: a K' or a mixture {K': w},
#: lambda as a function of B, K). Labels are spelled as in :data:`maxpo.METHODS`' ``scale`` field.
SCALE_FORMULAS: dict[str, tuple[Callable[[int], int | dict[int, Fraction]], Callable[[int, int], Fraction]]] = {
    "grad J_K": (lambda k: k, lambda b, k: Fraction(1)),
    "(B/K) grad J_K": (lambda k: k, lambda b, k: Fraction(b, k)),
    "B * grad J_1": (lambda k: 1, lambda b, k: Fraction(b)),
    "((B-1)/B) * B * grad J_1": (lambda k: 1, lambda b, k: Fraction(b - 1)),
    "sum_{K'<=K} (1/K') grad J_K'": (_harmonic, lambda b, k: Fraction(1)),
}


def _target_of(scale_label: str) -> str:
    """The objective a scale label's gradient belongs to, in words."""
    target = SCALE_FORMULAS[scale_label][0](2)
    if isinstance(target, dict):
        return "harmonic mixture of max@K' (K' <= K)"
    return "max@K" if target == 2 else "mean reward (max@1)"


#: Plain-text rendering of the labels of :data:`OFFSET_FORMULAS` and :data:`SCALE_FORMULAS` for tables.
FORMULA_TEXT: dict[str, str] = {
    "0": "0",
    "(K/B) J_K": "(K/B)·J_K",
    "(K/B) (J_K - J_{K-1})": "(K/B)·(J_K − J_{K−1})",
    "-K J_K / (B (B-1))": "−K·J_K / (B(B−1))",
    "grad J_K": "∇J_K",
    "(B/K) grad J_K": "(B/K)·∇J_K",
    "B * grad J_1": "B·∇J_1",
    "((B-1)/B) * B * grad J_1": "(B−1)·∇J_1",
    "sum_{K'<=K} (1/K') grad J_K'": "Σ_{K′≤K} (1/K′)·∇J_K′",
}


def identify_offset(c: Fraction | None, policy: CategoricalPolicy, b: int, k: int) -> list[str]:
    """Every formula of :data:`OFFSET_FORMULAS` whose value at this policy, B and K equals ``c``."""
    if c is None:
        return []
    return [name for name, f in OFFSET_FORMULAS.items() if f(b, k, policy.objective) == c]


def identify_scale(policy: CategoricalPolicy, b: int, k: int, method: str) -> list[str]:
    """Every formula of :data:`SCALE_FORMULAS` that the method's expected gradient satisfies here."""
    out = []
    for name, (target, lam) in SCALE_FORMULAS.items():
        got = gradient_scale(policy, b, k, method, target(k))
        if got is not None and got == lam(b, k):
            out.append(name)
    return out


# --------------------------------------------------------------------------- the table
_PROBE = [0.0, 0.25, 1.0, 0.5]


def reward_type(method: str) -> str:
    """``"binary (pass@K)"`` if ``maxpo.advantages`` refuses non-binary rewards for the method, else ``"real"``."""
    b = len(_PROBE)
    k = next(k for k in range(1, b + 1) if maxpo.METHODS[method].check(b, k) is None)
    try:
        maxpo.advantages(_PROBE, k, method)
    except ValueError as err:
        if "binary" in str(err) or "0 or 1" in str(err):
            return "binary (pass@K)"
        raise
    return "real"


#: LaTeX for the labels of :data:`OFFSET_FORMULAS` and :data:`SCALE_FORMULAS`, typeset by MathJax in tables.
FORMULA_TEX: dict[str, str] = {
    "0": r"0",
    "(K/B) J_K": r"\tfrac{K}{B} J_K",
    "(K/B) (J_K - J_{K-1})": r"\tfrac{K}{B}(J_K - J_{K-1})",
    "-K J_K / (B (B-1))": r"-\tfrac{K J_K}{B(B-1)}",
    "grad J_K": r"\nabla J_K",
    "(B/K) grad J_K": r"\tfrac{B}{K}\nabla J_K",
    "B * grad J_1": r"B\,\nabla J_1",
    "((B-1)/B) * B * grad J_1": r"(B-1)\nabla J_1",
    "sum_{K'<=K} (1/K') grad J_K'": r"\textstyle\sum_{K'\le K} \tfrac{1}{K'}\nabla J_{K'}",
}


def formula_math(label: str | None) -> str:
    """Inline math ``\\(...\\)`` for a formula label (plain text if no LaTeX is known, a dash for None)."""
    if label is None:
        return "—"
    if label in FORMULA_TEX:
        return r"\(" + FORMULA_TEX[label] + r"\)"
    return FORMULA_TEXT.get(label, label)


def _is_centered(sums: Sequence[Fraction], rows: Sequence[Sequence[Number]]) -> bool:
    for s, row in zip(sums, rows):
        size = sum(abs(Fraction(a)) for a in row)
        if abs(s) > Fraction(1, 10**12) * size:
            return False
    return True


def _common(labels_per_config: list[list[str]]) -> str | None:
    """The first label found in every configuration, or None."""
    if not labels_per_config:
        return None
    common = [lab for lab in labels_per_config[0] if all(lab in labs for labs in labels_per_config[1:])]
    return common[0] if common else None


def method_table(policies: Sequence[CategoricalPolicy], sizes: Sequence[tuple[int, int]],
                 methods: Sequence[str] | None = None) -> list[dict[str, object]]:
    """One row per method; every cell computed by exact enumeration over ``policies`` x ``sizes``.

    A method is evaluated at each ``(B, K)`` it accepts (``METHODS[name].check``) and on
    each policy whose rewards it accepts (binary-only methods on binary policies).
    Columns: ``scale`` (a label of :data:`SCALE_FORMULAS` that holds in every
    configuration, or ``None``: then the method is not unbiased for any
    fixed multiple of a max@K' gradient), ``target``, ``unbiased``, ``centered``
    (every batch sums to zero), ``offset`` (a label of :data:`OFFSET_FORMULAS`
    that holds everywhere, for max@K-unbiased methods), ``rewards``,
    ``cost`` (the declared complexity), ``configs`` (how many were checked) and
    ``sizes`` (the ``(B, K)`` used).
    """
    rows: list[dict[str, object]] = []
    for name in methods or list(maxpo.METHODS):
        info = maxpo.METHODS[name]
        rtype = reward_type(name)
        scale_labels, offset_labels, centered, used = [], [], True, []
        for b, k in sizes:
            if info.check(b, k) is not None:
                continue
            for pol in policies:
                if rtype != "real" and not pol.binary:
                    continue
                used.append((b, k))
                labels = identify_scale(pol, b, k, name)
                scale_labels.append(labels)
                centered &= _is_centered(batch_sums(pol, b, k, name), advantage_rows(pol, b, k, name))
                lam = next((SCALE_FORMULAS[lab][1](b, k) for lab in labels
                            if _target_of(lab) == "max@K"), None)
                offset_labels.append(identify_offset(offset(pol, b, k, name, lam), pol, b, k)
                                     if lam is not None else [])
        scale = _common(scale_labels)
        max_k = scale is not None and _target_of(scale) == "max@K"
        rows.append({
            "method": name,
            "target": _target_of(scale) if scale else "none (biased)",
            "scale": scale,
            "unbiased": scale is not None,
            "offset": _common(offset_labels) if max_k else None,
            "centered": centered,
            "rewards": rtype,
            "cost": info.complexity,
            "configs": len(used),
            "sizes": sorted(set(used)),
        })
    return rows


# --------------------------------------------------------------------------- float moments
@dataclass(frozen=True)
class _AllBatches:
    """Every B-tuple of actions of a categorical policy at once, in float64 (``N = n ** b`` rows)."""

    probs: torch.Tensor  # (n,)
    actions: torch.Tensor  # (N, b)
    weight: torch.Tensor  # (N,): probability of the tuple
    adv: torch.Tensor  # (N, b): maxpo.advantages of its rewards
    score: torch.Tensor  # (N, b, n): grad log pi(y_i) = e_{y_i} - pi, with respect to the logits
    grad: torch.Tensor  # (N, n): the estimate sum_i A_i grad log pi(y_i)


def _all_batches(probs: Sequence[float], action_rewards: Sequence[float], b: int, k: int,
                 method: str) -> _AllBatches:
    p = torch.tensor([float(v) for v in probs], dtype=torch.float64)
    r = torch.tensor([float(v) for v in action_rewards], dtype=torch.float64)
    n = len(p)
    if n ** b > 2_000_000:
        raise ValueError(f"{n}^{b} = {n ** b} batches is too many to enumerate; use fewer actions or a smaller B")
    actions = torch.tensor(list(itertools.product(range(n), repeat=b)), dtype=torch.long).reshape(-1, b)
    adv = maxpo.advantages(r[actions], k, method)
    score = torch.nn.functional.one_hot(actions, n).to(torch.float64) - p
    return _AllBatches(probs=p, actions=actions, weight=p[actions].prod(-1), adv=adv, score=score,
                       grad=torch.einsum("Nb,Nbn->Nn", adv, score))


class GradientMoments(TypedDict):
    """What :func:`gradient_moments` returns (see there for each entry)."""

    mean: list[float]
    total_variance: float
    mean_abs_sum: float
    conditional_mean: list[float]
    batches: int


def gradient_moments(probs: Sequence[float], action_rewards: Sequence[float], b: int, k: int,
                     method: str) -> GradientMoments:
    r"""Exact (float64) mean and total variance of :math:`\hat g = \sum_i A_i \nabla\log\pi(y_i)`.

    Enumerates all ``len(probs) ** b`` batches at once and computes advantages
    with :func:`maxpo.advantages`. Returns ``mean`` (the expected gradient with
    respect to the logits, a list), ``total_variance``
    (:math:`E\|\hat g - E\hat g\|^2`), ``mean_abs_sum``
    (:math:`E|\sum_i A_i|`), ``conditional_mean`` (:math:`E[A_1 \mid y_1 = a]` per
    action) and ``batches``.
    """
    e = _all_batches(probs, action_rewards, b, k, method)
    p, actions, weight, adv, g = e.probs, e.actions, e.weight, e.adv, e.grad
    n = len(p)
    mean = (weight[:, None] * g).sum(0)
    var = (weight * ((g - mean) ** 2).sum(-1)).sum()
    first = torch.nn.functional.one_hot(actions[:, 0], n).to(torch.float64)  # (N, n)
    cond = (weight[:, None] * adv[:, :1] * first).sum(0) / p
    return {
        "mean": mean.tolist(),
        "total_variance": float(var),
        "mean_abs_sum": float((weight * adv.sum(-1).abs()).sum()),
        "conditional_mean": cond.tolist(),
        "batches": int(actions.shape[0]),
    }


def shifted_variance(probs: Sequence[float], action_rewards: Sequence[float], b: int, k: int,
                     method: str = "maxpo") -> tuple[float, float, float]:
    r"""Coefficients of :math:`\mathrm{tr\,Var}(\hat g + c\,S) = v_0 + 2 v_1 c + v_2 c^2`, exactly (float64).

    :math:`\hat g` is the method's gradient estimate and
    :math:`S = \sum_i \nabla\log\pi(y_i)` the summed score, which has mean zero:
    adding the same constant ``c`` to every advantage keeps the gradient
    unbiased and changes its total variance along this parabola, whose
    minimum is at :math:`c^* = -v_1 / v_2`. Enumerates all batches.
    """
    e = _all_batches(probs, action_rewards, b, k, method)
    weight = e.weight
    s = e.score.sum(1)  # (N, n), mean zero
    g = e.grad
    g = g - (weight[:, None] * g).sum(0)
    return (float((weight * (g * g).sum(-1)).sum()), float((weight * (g * s).sum(-1)).sum()),
            float((weight * (s * s).sum(-1)).sum()))
