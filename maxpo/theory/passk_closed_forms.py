r"""Pass@K closed forms: every method's advantages for a binary batch, as sympy expressions.

With binary rewards a batch is summarised by ``c``, its number of correct
answers, and every symmetric method gives one value to all correct answers and
one to all wrong answers. :func:`closed_forms` writes both as sympy expressions
in the symbols ``B``, ``K``, ``c`` (binomials left symbolic), derived in the
chapter *The canonical finite-batch advantage*:

* :math:`\hat\rho = 1 - \binom{B-c}{K}/\binom{B}{K}`,
  :math:`Q_{\text{wrong}} = 1 - \binom{B-1-c}{K-1}/\binom{B-1}{K-1}`, :math:`Q_{\text{correct}} = 1`;
* each method's two values follow from its definition in terms of these.

:func:`evaluate` substitutes integers (with the convention that
:math:`\binom{n}{m} = 0` outside :math:`0 \le m \le n`) and returns exact rationals
(floats for the square-root methods). :func:`symbolic_identities` states the
sums over a batch for symbolic ``B, K, c``; sympy's ``gammasimp`` proves them.
A value for the wrong answers is meaningful only when ``c < B``, for the correct
ones only when ``c > 0``.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from functools import cache, lru_cache

import sympy as sp

__all__ = ["B", "C", "K", "Q_WRONG", "RHO", "V_CORRECT", "V_WRONG", "closed_forms", "evaluate", "parts",
           "simplify_residual", "symbolic_identities"]

B, K, C = sp.symbols("B K c", positive=True, integer=True)
_binom = sp.binomial


def _parts() -> dict[str, sp.Expr]:
    rho = 1 - _binom(B - C, K) / _binom(B, K)
    q_wrong = 1 - _binom(B - 1 - C, K - 1) / _binom(B - 1, K - 1)
    # V_{-i}^{(K)} without a correct sample (c-1 correct among B-1), and without a wrong one (c correct)
    v_correct = 1 - _binom(B - C, K) / _binom(B - 1, K)
    v_wrong = 1 - _binom(B - 1 - C, K) / _binom(B - 1, K)
    return {"rho": rho, "q_wrong": q_wrong, "v_correct": v_correct, "v_wrong": v_wrong}


#: Symbols for the compact forms: the pass@K estimate, Q of a wrong answer, and the
#: leave-one-out pass@K estimates without a correct / without a wrong answer.
RHO, Q_WRONG, V_CORRECT, V_WRONG = sp.symbols(r"\hat{\rho} Q_{\rm{wrong}} V_{-\rm{correct}} V_{-\rm{wrong}}")


def parts() -> dict[sp.Symbol, sp.Expr]:
    """The building blocks of the compact forms, as binomial expressions in ``B, K, c``."""
    p = _parts()
    return {RHO: p["rho"], Q_WRONG: p["q_wrong"], V_CORRECT: p["v_correct"], V_WRONG: p["v_wrong"]}


@lru_cache(maxsize=2)
def closed_forms(compact: bool = False) -> dict[str, tuple[sp.Expr, sp.Expr]]:
    r"""``method -> (advantage of a correct answer, advantage of a wrong answer)`` in ``B, K, c``.

    With ``compact=True`` the expressions use the symbols :data:`RHO`, :data:`Q_WRONG`,
    :data:`V_CORRECT`, :data:`V_WRONG` (see :func:`parts`) instead of binomials.
    ``grpo`` uses :math:`\epsilon = 10^{-6}` as the package does. ``tang_loo`` is the
    ``K = B`` case of ``pkpo_loo1``'s expression, and ``grpo_passk`` divides it by the
    group's std (only a lone correct answer gets a non-zero value). ``maxrl`` at
    truncation ``K`` is :math:`\sum_{j \le K} \frac1j A^{(j)}_{\rm MaxPO}`: for a correct answer
    :math:`\frac{1}{\binom{B}{c}}\sum_{m=B-K}^{B-1}\binom{m}{c}/m
    = \big(\binom{B-1}{c} - \binom{B-1-K}{c}\big)/(c\binom{B}{c})` (absorption and the
    hockey stick, see :mod:`maxpo.theory.mixtures_symbolic`), :math:`(B-c)/(Bc)` at ``K = B - 1``;
    a wrong answer gets :math:`-\frac{c}{B-c}` times that (centring).
    """
    if compact:
        rho, qw, vc, vw = RHO, Q_WRONG, V_CORRECT, V_WRONG
    else:
        p = _parts()
        rho, qw, vc, vw = p["rho"], p["q_wrong"], p["v_correct"], p["v_wrong"]
    gap = K / (B - K)
    std = sp.sqrt(C * (B - C) / (B * (B - 1)))
    sigma = sp.sqrt(rho * (1 - rho))
    loo1 = (_binom(B - C, K - 1) / _binom(B, K), sp.Integer(0))
    maxrl = (_binom(B - 1, C) - _binom(B - 1 - K, C)) / (C * _binom(B, C))
    return {
        "maxpo": (gap * (1 - rho), gap * (qw - rho)),
        "maxpo_pairwise": (gap * (1 - rho), gap * (qw - rho)),
        "canonical": (B / (B - K) * (1 - rho), B / (B - K) * (qw - rho)),
        "pkpo_s": (K / B, K / B * qw),
        "pkpo_loo": (K / B - K / (B - 1) * vc, K / B * qw - K / (B - 1) * vw),
        "pkpo_loo1": loo1,
        "tang_loo": loo1,
        "grpo_passk": (loo1[0] / (std + sp.Rational(1, 10**6)), sp.Integer(0)),
        "maxrl": (maxrl, -C / (B - C) * maxrl),
        "chen_passk": ((1 - rho) / sigma, (qw - rho) / sigma),
        "grpo": ((1 - C / B) / (std + sp.Rational(1, 10**6)), (-C / B) / (std + sp.Rational(1, 10**6))),
        "dr_grpo": (1 - C / B, -C / B),
        "rloo": ((B - C) / (B - 1), -C / (B - 1)),
    }


def _comb(n: int, m: int) -> int:
    return math.comb(n, m) if 0 <= m <= n else 0


def _binom_exact(n: Fraction, m: Fraction) -> Fraction:
    return Fraction(_comb(int(n), int(m)))


def _sqrt_float(x: Fraction | float) -> float:
    return math.sqrt(x)


@cache
def _compiled(method: str) -> tuple[Callable[..., Fraction | float], Callable[..., Fraction | float]]:
    """The two closed forms as Python functions of (B, K, c); exact when called with Fractions."""
    modules = [{"binomial": _binom_exact, "sqrt": _sqrt_float}, "math"]
    return tuple(sp.lambdify((B, K, C), expr, modules=modules) for expr in closed_forms()[method])


def evaluate(method: str, b: int, k: int, c: int) -> tuple[Fraction | float | None, Fraction | float | None]:
    """Values of the closed forms at integers: ``(correct, wrong)``; ``None`` where that class is empty.

    Binomials outside their range are 0 (``math.comb`` convention). Exact
    rationals (the expressions are evaluated with ``Fraction`` arguments), except
    for ``chen_passk``, ``grpo`` and ``grpo_passk`` (floats). A group with no spread
    (``c`` = 0 or B) gets 0 from ``chen_passk``, ``grpo``, ``grpo_passk`` and ``maxrl``, and so
    does a batch whose pass@K estimate is exactly 1 for ``chen_passk`` (as in the package).
    """
    args = (Fraction(b), Fraction(k), Fraction(c))
    if method in ("chen_passk", "grpo", "grpo_passk", "maxrl"):
        rho = 1 - Fraction(_comb(b - c, k), _comb(b, k))
        if c in (0, b) or (method == "chen_passk" and rho in (0, 1)):
            return (Fraction(0) if c > 0 else None, Fraction(0) if c < b else None)
    correct, wrong = _compiled(method)
    return (correct(*args) if c > 0 else None, wrong(*args) if c < b else None)


def symbolic_identities() -> dict[str, sp.Expr]:
    r"""Batch sums that must hold for all B, K, c, as expressions that simplify to 0.

    ``c A_correct + (B - c) A_wrong`` equals 0 (maxpo, canonical), :math:`K\hat\rho` (pkpo_s),
    :math:`-K\hat\rho/(B-1)` (pkpo_loo). Returned as residuals (``lhs - rhs``)
    before simplification; :func:`simplify_residual` reduces each to 0.
    """
    f = closed_forms()
    rho = _parts()["rho"]

    def total(name: str) -> sp.Expr:
        cor, wr = f[name]
        return C * cor + (B - C) * wr

    return {
        "maxpo: sum = 0": total("maxpo"),
        "canonical: sum = 0": total("canonical"),
        "pkpo_s: sum = K rho_hat": total("pkpo_s") - K * rho,
        "pkpo_loo: sum = -K rho_hat/(B-1)": total("pkpo_loo") + K * rho / (B - 1),
        "dr_grpo: sum = 0": total("dr_grpo"),
        "rloo: sum = 0": total("rloo"),
    }


def simplify_residual(expr: sp.Expr) -> sp.Expr:
    """``gammasimp`` (binomial ratios with shifted arguments), then ``simplify`` (plain rational functions)."""
    return sp.simplify(sp.gammasimp(expr))
