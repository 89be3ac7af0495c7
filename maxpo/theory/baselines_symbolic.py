r"""Sympy proofs for the chapter *Baselines and centering*.

Every quantity here is written for **symbolic sorted rewards**
:math:`r_1 \le r_2 \le \dots \le r_B` (:func:`maxpo.theory.symbolic.sorted_reward_symbols`).
Because the rewards are sorted, the maximum of any subset is the reward at its
largest position, so every definition below is a finite sum of symbols with
rational coefficients, built by enumerating subsets exactly as the definition
reads. The max@K U-statistic, the signal and the ``Q_i`` (by subsets and in
closed form) come from :mod:`maxpo.theory.symbolic`; this module adds the baselines.
Two expressions are then equal for *every* sorted reward vector iff their
difference expands to zero, which sympy decides exactly. Each identity is
proved at one ``(B, K)`` at a time (small sizes); nothing is sampled.

What is proved, for each ``(B, K)`` passed in:

* the Leave-Two-Out (L2O) definition of MaxPO equals its closed forms and its
  pairwise form, and the MaxPO advantages sum to zero identically;
* PKPO's signal sums to :math:`K\hat\rho`, its leave-one-out advantage sums to
  :math:`-K\hat\rho/(B-1)`;
* PKPO's loo-1 advantage equals its subset-difference form and is a
  non-negative combination of reward gaps (hence never negative; wrong answers
  of a binary batch get exactly zero);
* every baseline omits the sample's own reward (the unbiasedness condition);
* :math:`K = 1` MaxPO is RLOO divided by B; shift invariance and positive
  homogeneity;
* at :math:`K = B` no baseline that omits the sample's own reward can centre
  PKPO's signal (:func:`mixed_difference_of_max`, :func:`centering_system`).
"""
from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TypeAlias

import sympy as sp

from maxpo.theory.symbolic import (
    maxk_by_subsets,
    maxk_ustatistic,
    q_values,
    signal_by_subsets,
    signal_closed_form,
    sorted_reward_symbols,
)

__all__ = [
    "Identity",
    "advantage_definitions",
    "baseline_definitions",
    "binary_sorted",
    "centering_system",
    "compare_with_package",
    "gap_coefficients",
    "identities",
    "loo1_binary_wrong_zero",
    "loo1_sign_certificate",
    "loo_ustat",
    "mixed_difference",
    "mixed_difference_of_max",
    "mixed_difference_of_baselines",
    "own_reward_free",
    "prove_all",
]

Expr: TypeAlias = sp.Expr


# --------------------------------------------------------------------------- building blocks
def _mean(values: Sequence[Expr]) -> Expr:
    return sp.Add(*values) / len(values)


def loo_ustat(r: Sequence[Expr], i: int, m: int) -> Expr:
    r""":math:`V_{-i}^{(m)}`: the max@m U-statistic of the sorted batch without sample ``i`` (0-based)."""
    return maxk_by_subsets(list(r[:i]) + list(r[i + 1:]), m, assume_sorted=True)


# --------------------------------------------------------------------------- definitions
def _l2o_baseline(r: Sequence[Expr], k: int, i: int) -> Expr:
    """Leave-Two-Out baseline of sample i: the other samples' signals, each recomputed without i, over B."""
    rest = list(r[:i]) + list(r[i + 1:])
    return sp.Add(*signal_by_subsets(rest, k, assume_sorted=True)) / len(r)


def baseline_definitions(r: Sequence[Expr], k: int) -> dict[str, list[Expr]]:
    r"""The baseline :math:`b_i` that each method subtracts from PKPO's signal :math:`s_i`.

    Only methods with a baseline are listed (those defined at this ``(B, K)``):
    ``pkpo_loo`` :math:`\frac{K}{B-1}V_{-i}^{(K)}`, ``pkpo_loo1`` :math:`\frac{K}{B}V_{-i}^{(K-1)}`,
    ``maxpo`` the L2O baseline :math:`\frac1B\sum_{j\ne i} s_j^{(-i)}`.
    """
    b = len(r)
    out: dict[str, list[Expr]] = {}
    if k <= b - 1:
        out["pkpo_loo"] = [sp.Rational(k, b - 1) * loo_ustat(r, i, k) for i in range(b)]
        out["maxpo"] = [_l2o_baseline(r, k, i) for i in range(b)]
    if 2 <= k <= b:
        out["pkpo_loo1"] = [sp.Rational(k, b) * loo_ustat(r, i, k - 1) for i in range(b)]
    return out


def _pairwise(r: Sequence[Expr], k: int) -> list[Expr]:
    b = len(r)
    out = []
    for i in range(b):
        acc = sp.Integer(0)
        for j in range(b):
            if j == i:
                continue
            rest = [m for m in range(b) if m not in (i, j)]
            acc += _mean([r[max((i, *t))] - r[max((j, *t))] for t in itertools.combinations(rest, k - 1)])
        out.append(sp.Rational(k, b * (b - 1)) * acc)
    return out


def advantage_definitions(r: Sequence[Expr], k: int) -> dict[str, list[Expr]]:
    """Every method defined at this ``(B, K)``, each built from its definition (not a closed form).

    Names match :data:`maxpo.METHODS`; ``maxpo`` is signal minus the L2O baseline,
    ``maxpo_pairwise`` the antisymmetric pairwise sum, ``canonical`` is
    :math:`Q_i - V_{-i}^{(K)}`, ``pkpo_loo1`` is signal minus its baseline.
    """
    b = len(r)
    s = signal_by_subsets(r, k, assume_sorted=True)
    out: dict[str, list[Expr]] = {"pkpo_s": s}
    for name, base in baseline_definitions(r, k).items():
        out[name] = [si - bi for si, bi in zip(s, base)]
    if k <= b - 1:
        out["maxpo_pairwise"] = _pairwise(r, k)
        q = q_values(r, k, assume_sorted=True)
        out["canonical"] = [q[i] - loo_ustat(r, i, k) for i in range(b)]
    if b >= 2:
        out["rloo"] = [r[i] - _mean(list(r[:i]) + list(r[i + 1:])) for i in range(b)]
        out["dr_grpo"] = [r[i] - _mean(list(r)) for i in range(b)]
    if k == b and b >= 2:
        out["tang_loo"] = [r[b - 1] - r[b - 2] if i == b - 1 else sp.Integer(0) for i in range(b)]
    return out


# --------------------------------------------------------------------------- identities
@dataclass(frozen=True)
class Identity:
    """One claimed identity ``lhs == rhs`` (a list means one identity per sample)."""

    name: str
    b: int
    k: int
    lhs: tuple[Expr, ...]
    rhs: tuple[Expr, ...]

    @property
    def residuals(self) -> tuple[Expr, ...]:
        """``expand(lhs - rhs)`` per component: all zero iff the identity holds for every sorted r."""
        return tuple(sp.expand(a - c) for a, c in zip(self.lhs, self.rhs, strict=True))

    def holds(self) -> bool:
        """True iff every residual is identically zero (exact polynomial arithmetic)."""
        return all(res == 0 for res in self.residuals)


def _as_tuple(v: Sequence[Expr] | Expr) -> tuple[Expr, ...]:
    return tuple(v) if isinstance(v, (list, tuple)) else (v,)


def _ident(name: str, b: int, k: int, lhs: Sequence[Expr] | Expr, rhs: Sequence[Expr] | Expr) -> Identity:
    return Identity(name, b, k, _as_tuple(lhs), _as_tuple(rhs))


def gap_coefficients(expr: Expr, r: Sequence[sp.Symbol]) -> tuple[Expr, list[Expr]]:
    r"""Rewrite ``expr`` in the lowest reward and the gaps :math:`d_m = r_{m+1} - r_m \ge 0`.

    Returns ``(coefficient of r_1, [coefficient of d_1, ..., d_{B-1}])``. A linear
    form is non-negative for every sorted reward vector iff the first is 0 and
    all the others are >= 0 (take all gaps zero but one, and shift).
    """
    b = len(r)
    d = sp.symbols(f"d_1:{b}", nonnegative=True)
    sub = {r[j]: r[0] + sp.Add(*d[:j]) for j in range(1, b)}
    e = sp.expand(expr.subs(sub, simultaneous=True))
    return e.coeff(r[0]), [e.coeff(dm) for dm in d]


def binary_sorted(b: int, c: int) -> list[int]:
    """The sorted binary batch with ``c`` correct answers: ``B - c`` zeros then ``c`` ones."""
    return [0] * (b - c) + [1] * c


def identities(b: int, k: int) -> list[Identity]:
    """Every identity of the chapter that applies at ``(B, K)``, built from the definitions."""
    r = sorted_reward_symbols(b)
    defs = advantage_definitions(r, k)
    s = defs["pkpo_s"]
    rho = maxk_by_subsets(r, k, assume_sorted=True)
    q = q_values(r, k, assume_sorted=True)
    out = [
        _ident("rho_hat: subset mean = rank weights", b, k, rho, maxk_ustatistic(r, k, assume_sorted=True)),
        _ident("signal: subset sum = rank weights", b, k, s, signal_closed_form(r, k)),
        _ident("sum_i s_i = K rho_hat", b, k, sp.Add(*s), k * rho),
        _ident("s_i = (K/B) Q_i", b, k, s, [sp.Rational(k, b) * qi for qi in q]),
    ]
    if k <= b - 1:
        m = defs["maxpo"]
        v = [loo_ustat(r, i, k) for i in range(b)]
        out += [
            _ident("rho_hat = (K/B) Q_i + ((B-K)/B) V_-i", b, k, [rho] * b,
                   [sp.Rational(k, b) * q[i] + sp.Rational(b - k, b) * v[i] for i in range(b)]),
            _ident("L2O baseline = (K/B) V_-i", b, k, baseline_definitions(r, k)["maxpo"],
                   [sp.Rational(k, b) * vi for vi in v]),
            _ident("maxpo (L2O) = (B s_i - K rho_hat)/(B-K)", b, k, m,
                   [(b * si - k * rho) / (b - k) for si in s]),
            _ident("maxpo (L2O) = K/(B-K) (Q_i - rho_hat)", b, k, m,
                   [sp.Rational(k, b - k) * (qi - rho) for qi in q]),
            _ident("maxpo (L2O) = pairwise form", b, k, m, defs["maxpo_pairwise"]),
            _ident("sum_i maxpo_i = 0", b, k, sp.Add(*m), sp.Integer(0)),
            _ident("canonical = (B/K) maxpo", b, k, defs["canonical"], [sp.Rational(b, k) * a for a in m]),
            _ident("sum_i pkpo_loo_i = -K rho_hat/(B-1)", b, k, sp.Add(*defs["pkpo_loo"]),
                   -k * rho / (b - 1)),
        ]
        t = sp.Symbol("t", real=True)
        c = sp.Symbol("c", positive=True)
        shifted = {ri: ri + t for ri in r}
        scaled = {ri: c * ri for ri in r}
        out += [
            _ident("maxpo(r + t) = maxpo(r)", b, k, [a.subs(shifted, simultaneous=True) for a in m], m),
            _ident("maxpo(c r) = c maxpo(r)", b, k, [a.subs(scaled, simultaneous=True) for a in m],
                   [c * a for a in m]),
        ]
        if k == 1:
            out.append(_ident("K = 1: maxpo = rloo / B", b, k, m, [a / b for a in defs["rloo"]]))
    if 2 <= k <= b:
        loo1 = defs["pkpo_loo1"]
        diff_form = [sp.Integer(0)] * b
        for sub in itertools.combinations(range(b), k):
            for i in sub:
                diff_form[i] += r[max(sub)] - r[max(j for j in sub if j != i)]
        diff_form = [x / math.comb(b, k) for x in diff_form]
        lower = [sp.Add(*[sp.Rational(math.comb(j - 1, k - 2), math.comb(b, k)) * (r[i - 1] - r[j - 1])
                          for j in range(1, i)]) for i in range(1, b + 1)]
        out += [
            _ident("pkpo_loo1 = C(B,K)^-1 sum_S [max_S - max_S\\i]", b, k, loo1, diff_form),
            _ident("pkpo_loo1 = sum_j<i C(j-1,K-2)/C(B,K) (r_i - r_j)", b, k, loo1, lower),
        ]
    if k == b and b >= 2:
        out.append(_ident("K = B: tang_loo = pkpo_loo1", b, k, defs["tang_loo"], defs["pkpo_loo1"]))
    return out


def prove_all(sizes: Sequence[tuple[int, int]]) -> list[dict[str, object]]:
    """Prove every identity at every ``(B, K)`` in ``sizes``; one row per identity and size."""
    rows = []
    for b, k in sizes:
        for ident in identities(b, k):
            rows.append({"identity": ident.name, "B": b, "K": k, "holds": ident.holds()})
    return rows


def own_reward_free(b: int, k: int) -> dict[str, bool]:
    """For each baseline: True iff no sample's baseline contains that sample's own reward symbol."""
    r = sorted_reward_symbols(b)
    return {name: all(r[i] not in sp.sympify(bi).free_symbols for i, bi in enumerate(base))
            for name, base in baseline_definitions(r, k).items()}


def loo1_sign_certificate(b: int, k: int) -> dict[str, object]:
    """Gap coefficients of PKPO loo-1 and MaxPO at ``(B, K)``, with gaps d_m = r_(m+1) - r_(m).

    Returns ``loo1_nonnegative`` (every sample: r_1 coefficient 0, every gap
    coefficient >= 0, so loo-1 >= 0 for every sorted batch), ``loo1_top_pattern``
    (the best sample: gap coefficients 0 for m < K-1 and > 0 for m >= K-1, so its
    loo-1 advantage is positive exactly when r_(K-1) < r_(B), i.e. when at most
    B-K+1 samples tie at the top), the coefficient lists, and, for K <= B-1,
    ``maxpo_lowest_pattern`` (the worst sample's MaxPO advantage: gap
    coefficients 0 for m < K and < 0 for m >= K, so it is negative exactly when
    r_(K) < r_(B), i.e. when at most B-K samples tie at the top).
    """
    r = sorted_reward_symbols(b)
    defs = advantage_definitions(r, k)
    loo1 = [gap_coefficients(a, r) for a in defs["pkpo_loo1"]]
    nonneg = all(c0 == 0 and all(c >= 0 for c in cs) for c0, cs in loo1)
    top0, top = loo1[-1]
    top_pattern = top0 == 0 and all((c > 0) if m >= k - 1 else (c == 0) for m, c in enumerate(top, start=1))
    out: dict[str, object] = {"loo1_nonnegative": nonneg, "loo1_top_pattern": top_pattern,
                              "loo1_coefficients": loo1}
    if k <= b - 1:
        c0, cs = gap_coefficients(defs["maxpo"][0], r)
        out["maxpo_lowest_gap_coefficients"] = (c0, cs)
        out["maxpo_lowest_pattern"] = c0 == 0 and all(
            (c < 0) if m >= k else (c == 0) for m, c in enumerate(cs, start=1))
    return out


def loo1_binary_wrong_zero(b: int, k: int) -> bool:
    """True iff PKPO loo-1 gives exactly 0 to every wrong answer of every binary batch (c = 0..B)."""
    r = sorted_reward_symbols(b)
    loo1 = advantage_definitions(r, k)["pkpo_loo1"]
    for c in range(b + 1):
        sub = dict(zip(r, binary_sorted(b, c)))
        if any(loo1[i].subs(sub) != 0 for i in range(b - c)):
            return False
    return True


# --------------------------------------------------------------------------- K = B
def mixed_difference(f: Callable[[tuple[int, ...]], Expr], b: int) -> Expr:
    r"""The B-fold mixed difference :math:`\Delta_1\cdots\Delta_B f` on :math:`\{0,1\}^B`.

    :math:`\Delta_j f(x) = f(x|_{x_j=1}) - f(x|_{x_j=0})`; composing all B gives
    :math:`\sum_{x\in\{0,1\}^B} (-1)^{B - |x|} f(x)`. It is zero for any function
    that does not depend on some coordinate.
    """
    return sp.Add(*[(-1) ** (b - sum(x)) * f(x) for x in itertools.product((0, 1), repeat=b)])


def mixed_difference_of_max(b: int) -> Expr:
    r"""Mixed difference of :math:`\sum_i s_i = B\max(x)` at K = B: equals :math:`(-1)^{B+1} B \ne 0`."""
    return mixed_difference(lambda x: b * max(x), b)


def mixed_difference_of_baselines(b: int) -> Expr:
    r"""Mixed difference of :math:`\sum_i b_i(x_{-i})` for *arbitrary* functions ``b_i`` (sympy Functions).

    Sympy cancels the terms pairwise, leaving 0: a baseline that omits its own
    sample is annihilated by :math:`\Delta_i`, whatever else it does.
    """
    funcs = [sp.Function(f"b_{i + 1}") for i in range(b)]
    return mixed_difference(lambda x: sp.Add(*[funcs[i](*(x[:i] + x[i + 1:])) for i in range(b)]), b)


def centering_system(b: int, k: int) -> dict[str, object]:
    r"""Can any baseline that omits the sample's own reward centre PKPO's signal, on binary rewards?

    Unknowns: a table :math:`b_i(z)` for every sample i and every binary vector
    z of the other B-1 rewards (:math:`B\,2^{B-1}` unknowns). Equations: for every
    binary batch x, :math:`\sum_i [s_i(x) - b_i(x_{-i})] = 0` (:math:`2^B` equations).
    Exact rational linear algebra decides consistency (Rouche-Capelli: a
    solution exists iff the augmented matrix has the same rank).
    """
    unknown = {(i, z): n for n, (i, z) in enumerate(
        (i, z) for i in range(b) for z in itertools.product((0, 1), repeat=b - 1))}
    rows, rhs = [], []
    for x in itertools.product((0, 1), repeat=b):
        row = [0] * len(unknown)
        for i in range(b):
            row[unknown[(i, x[:i] + x[i + 1:])]] = 1
        rows.append(row)
        xs = sorted(x)
        rhs.append(sp.Add(*signal_by_subsets(xs, k, assume_sorted=True)))
    a = sp.Matrix(rows)
    aug = a.row_join(sp.Matrix(rhs))
    rank_a, rank_aug = a.rank(), aug.rank()
    return {"B": b, "K": k, "unknowns": len(unknown), "equations": len(rows),
            "rank": rank_a, "rank_augmented": rank_aug, "solvable": rank_a == rank_aug}


# --------------------------------------------------------------------------- numeric check
def compare_with_package(b: int, k: int, seed: int = 0, denominator: int = 64) -> dict[str, float]:
    """Substitute random rational rewards (given to the package unsorted) into each definition.

    Returns, per method, the largest absolute difference between the exact value
    of the sympy definition and ``maxpo.advantages(..., method)`` in float64.
    """
    import torch

    import maxpo

    rng = random.Random(seed)
    values = sorted(Fraction(rng.randint(-3 * denominator, 3 * denominator), denominator) for _ in range(b))
    order = list(range(b))
    rng.shuffle(order)  # the package sees the batch in a random order
    r = sorted_reward_symbols(b)
    sub = {ri: sp.Rational(v.numerator, v.denominator) for ri, v in zip(r, values)}
    given = torch.tensor([float(values[p]) for p in order], dtype=torch.float64)
    out = {}
    for name, exprs in advantage_definitions(r, k).items():
        if maxpo.METHODS[name].check(b, k) is not None:
            continue
        exact = [exprs[p].subs(sub) for p in order]
        got = maxpo.advantages(given, k, name).tolist()
        out[name] = max(abs(float(e) - g) for e, g in zip(exact, got))
    return out
