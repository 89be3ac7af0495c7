r"""Every intermediate quantity of MaxPO for one small batch, by enumeration, in fractions.

For the worked example of the baselines chapter: given rewards ``r`` and ``k``,

* :func:`subset_table` -- every K-subset ``S`` and its maximum;
* :func:`sample_table` -- per sample: :math:`s_i`, :math:`Q_i`, :math:`V^{(K)}_{-i}`,
  the L2O baseline :math:`b_i = \tfrac{K}{B} V^{(K)}_{-i}` and :math:`A_i = s_i - b_i`;
* :func:`pairwise_matrix` -- :math:`D_{ij} = E_T[\max(r_i, \max T) - \max(r_j, \max T)]`,
  ``T`` a uniform (K-1)-subset of the samples other than ``i`` and ``j``, an
  antisymmetric matrix with :math:`A_i = \tfrac{K}{B(B-1)} \sum_{j \ne i} D_{ij}`;
* :func:`subset_roles` -- for every sample and every K-subset, whether the subset
  feeds the sample's signal (it contains the sample) or its L2O baseline (it avoids it).

Everything is computed from the definitions by listing subsets; nothing calls
:mod:`maxpo.estimators`, so the chapter can compare the two.
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence
from fractions import Fraction

Number = int | float | Fraction | str


def _exact(rewards: Sequence[Number], k: int) -> list[Fraction]:
    r = [Fraction(v) for v in rewards]
    if not 1 <= k <= len(r) - 1:
        raise ValueError(f"the worked example needs 1 <= K <= B - 1, got K={k}, B={len(r)}")
    return r


def _mean(values: Sequence[Fraction]) -> Fraction:
    return sum(values, Fraction(0)) / len(values)


def subset_table(rewards: Sequence[Number], k: int) -> list[tuple[tuple[int, ...], Fraction]]:
    """``(S, max_S)`` for every K-subset ``S`` of sample indices (0-based), in lexicographic order."""
    r = _exact(rewards, k)
    return [(s, max(r[j] for j in s)) for s in itertools.combinations(range(len(r)), k)]


def sample_table(rewards: Sequence[Number], k: int) -> list[dict[str, Fraction]]:
    r"""Per sample ``i``: ``s`` (signal), ``Q``, ``V`` (max@K of the others), ``b`` (L2O), ``A``.

    :math:`s_i = \binom{B}{K}^{-1}\sum_{S \ni i} \max_S`, :math:`Q_i = \tfrac{B}{K} s_i`,
    :math:`V_{-i}` the mean of :math:`\max_S` over K-subsets avoiding ``i``,
    :math:`b_i = \tfrac1B \sum_{j \ne i} s^{(-i)}_j` (the L2O definition, signals
    recomputed without ``i``), and :math:`A_i = s_i - b_i`.
    """
    r = _exact(rewards, k)
    b = len(r)
    subsets = subset_table(r, k)
    rows = []
    for i in range(b):
        s = sum((m for S, m in subsets if i in S), Fraction(0)) / len(subsets)
        v = _mean([m for S, m in subsets if i not in S])
        others = [j for j in range(b) if j != i]
        sub = [(S, max(r[j] for j in S)) for S in itertools.combinations(others, k)]
        signals_without_i = [sum((m for S, m in sub if j in S), Fraction(0)) / len(sub) for j in others]
        baseline = sum(signals_without_i, Fraction(0)) / b
        rows.append({"r": r[i], "s": s, "Q": s * b / k, "V": v, "b": baseline, "A": s - baseline})
    return rows


def pairwise_matrix(rewards: Sequence[Number], k: int) -> list[list[Fraction]]:
    r"""The antisymmetric matrix :math:`D_{ij}` of the pairwise form of MaxPO (0 on the diagonal)."""
    r = _exact(rewards, k)
    b = len(r)
    out = [[Fraction(0)] * b for _ in range(b)]
    for i, j in itertools.permutations(range(b), 2):
        rest = [r[m] for m in range(b) if m not in (i, j)]
        out[i][j] = _mean([max([r[i], *t]) - max([r[j], *t]) for t in itertools.combinations(rest, k - 1)])
    return out


def subset_roles(b: int, k: int) -> list[list[str]]:
    """``roles[i][n]`` is ``"signal"`` if the n-th K-subset contains sample i, else ``"baseline"``."""
    if not 1 <= k <= b - 1:
        raise ValueError(f"need 1 <= K <= B - 1, got K={k}, B={b}")
    subsets = list(itertools.combinations(range(b), k))
    return [["signal" if i in S else "baseline" for S in subsets] for i in range(b)]
