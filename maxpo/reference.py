r"""Exact brute-force oracles, written from the definitions with ``fractions.Fraction``.

Nothing here shares code with :mod:`maxpo.estimators`: every quantity is computed
by enumerating subsets (or, for the policy-gradient checks, every B-tuple of
actions of a categorical policy), so agreement between the two is evidence,
not tautology. Costs are exponential: use small groups (B <= 8 or so).

Rewards may be ints, Fractions or floats (floats are converted exactly with
``Fraction(float)``). Methods whose definition involves a square root
(``grpo``, ``chen_passk``, ``grpo_passk``) return floats computed from exact numerators.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction

Number = int | float | Fraction


def _exact(values: Iterable[Number]) -> list[Fraction]:
    return [Fraction(v) for v in values]


def _mean(values: Sequence[Fraction]) -> Fraction:
    return sum(values, Fraction(0)) / len(values)


# --------------------------------------------------------------------------- objective
def maxk_ustat(rewards: Sequence[Number], k: int) -> Fraction:
    """Mean over all k-subsets of the batch of the subset maximum (needs k <= B)."""
    r = _exact(rewards)
    if not 1 <= k <= len(r):
        raise ValueError(f"need 1 <= k <= B, got k={k}, B={len(r)}")
    return _mean([max(r[j] for j in s) for s in itertools.combinations(range(len(r)), k)])


def signal(rewards: Sequence[Number], k: int) -> list[Fraction]:
    """PKPO signal s_i = C(B,k)^-1 * sum over k-subsets S containing i of max_S."""
    r = _exact(rewards)
    b = len(r)
    total = math.comb(b, k)
    out = [Fraction(0)] * b
    for s in itertools.combinations(range(b), k):
        m = max(r[j] for j in s)
        for i in s:
            out[i] += m
    return [v / total for v in out]


def q_values(rewards: Sequence[Number], k: int) -> list[Fraction]:
    """Q_i = mean over (k-1)-subsets T of the other samples of max(r_i, max T)."""
    r = _exact(rewards)
    out = []
    for i in range(len(r)):
        others = [r[j] for j in range(len(r)) if j != i]
        out.append(_mean([max([r[i], *t]) for t in itertools.combinations(others, k - 1)]))
    return out


def leave_one_out_maxk(rewards: Sequence[Number], i: int, m: int) -> Fraction:
    """V_{-i}^{(m)}: the max@m U-statistic of the batch without sample i."""
    r = _exact(rewards)
    return maxk_ustat(r[:i] + r[i + 1:], m)


# --------------------------------------------------------------------------- advantages
def _maxpo_l2o(r: list[Fraction], k: int) -> list[Fraction]:
    # Definition of the Leave-Two-Out baseline: sample i's baseline averages the other
    # samples' signals, each recomputed on the batch without i, divided by B.
    b = len(r)
    s = signal(r, k)
    out = []
    for i in range(b):
        rest = r[:i] + r[i + 1:]
        s_rest = signal(rest, k)
        out.append(s[i] - sum(s_rest, Fraction(0)) / b)
    return out


def _maxpo_pairwise(r: list[Fraction], k: int) -> list[Fraction]:
    b = len(r)
    out = []
    for i in range(b):
        acc = Fraction(0)
        for j in range(b):
            if j == i:
                continue
            rest = [r[m] for m in range(b) if m not in (i, j)]
            diffs = [max([r[i], *t]) - max([r[j], *t]) for t in itertools.combinations(rest, k - 1)]
            acc += _mean(diffs)
        out.append(Fraction(k, b * (b - 1)) * acc)
    return out


def _pkpo_loo1(r: list[Fraction], k: int) -> list[Fraction]:
    b = len(r)
    out = [Fraction(0)] * b
    for s in itertools.combinations(range(b), k):
        m = max(r[j] for j in s)
        for i in s:
            out[i] += m - max(r[j] for j in s if j != i)
    return [v / math.comb(b, k) for v in out]


def advantages(rewards: Sequence[Number], k: int, method: str) -> list[Fraction] | list[float]:
    """Exact advantages of one group for ``method`` (same names as ``maxpo.METHODS``).

    Each method is computed from its defining formula by enumeration; size
    requirements are enforced with ``ValueError``.
    """
    r = _exact(rewards)
    b = len(r)

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise ValueError(f"{method} needs {what}; got B={b}, k={k}")

    if method == "pkpo_s":
        need(k <= b, "k <= B")
        return signal(r, k)
    if method == "pkpo_loo":
        need(k <= b - 1, "k <= B-1")
        s = signal(r, k)
        return [s[i] - Fraction(k, b - 1) * leave_one_out_maxk(r, i, k) for i in range(b)]
    if method == "pkpo_loo1":
        need(2 <= k <= b, "2 <= k <= B")
        return _pkpo_loo1(r, k)
    if method == "maxpo":
        need(k <= b - 1, "k <= B-1")
        return _maxpo_l2o(r, k)
    if method == "maxpo_pairwise":
        need(k <= b - 1, "k <= B-1")
        return _maxpo_pairwise(r, k)
    if method == "canonical":
        need(k <= b - 1, "k <= B-1")
        q = q_values(r, k)
        return [q[i] - leave_one_out_maxk(r, i, k) for i in range(b)]
    if method == "tang_loo":
        need(k == b, "k == B")
        top = max(r)
        return [top - max(r[:i] + r[i + 1:]) if b > 1 else Fraction(0) for i in range(b)]
    if method == "chen_passk":
        need(k <= b and all(v in (0, 1) for v in r), "k <= B and binary rewards")
        rho = maxk_ustat(r, k)
        q = q_values(r, k)
        var = rho * (1 - rho)
        if var == 0:
            return [0.0] * b
        return [float(q[i] - rho) / math.sqrt(var) for i in range(b)]
    if method == "grpo_passk":
        # verl 0.9.1: the top sample gets (r_max - r_second_max) / (std + 1e-6), std with
        # Bessel's correction over the group; every other sample 0 (ties at the top give 0).
        need(k == b and b >= 2, "k == B >= 2")
        order = sorted(range(b), key=lambda i: r[i], reverse=True)
        mu = _mean(r)
        std = math.sqrt(sum((v - mu) ** 2 for v in r) / (b - 1))
        out = [0.0] * b
        out[order[0]] = float(r[order[0]] - r[order[1]]) / (std + 1e-6)
        return out
    if method == "maxrl":
        need(1 <= k <= b - 1 and all(v in (0, 1) for v in r), "1 <= k <= B-1 and binary rewards")
        if k == b - 1:  # Tajwar et al.: (r_i - rbar) / (B rbar), 0 for an all-wrong group
            rbar = _mean(r)
            return [(v - rbar) / (b * rbar) if rbar else Fraction(0) for v in r]
        return mixture_advantages(r, {j: Fraction(1, j) for j in range(1, k + 1)}, "maxpo")
    if method == "dr_grpo":
        mu = _mean(r)
        return [v - mu for v in r]
    if method == "rloo":
        need(b >= 2, "B >= 2")
        return [r[i] - _mean(r[:i] + r[i + 1:]) for i in range(b)]
    if method == "grpo":
        need(b >= 2, "B >= 2")
        mu = _mean(r)
        std = math.sqrt(sum((v - mu) ** 2 for v in r) / (b - 1))
        return [float(v - mu) / (std + 1e-6) for v in r]
    raise ValueError(f"unknown method {method!r}")


def mixture_advantages(rewards: Sequence[Number], weights: Mapping[int, Number],
                       method: str = "maxpo") -> list[Fraction]:
    """sum_K w_K A^(K): the weighted sum of the single-K definitions above (exact weights as Fractions)."""
    r = _exact(rewards)
    out = [Fraction(0)] * len(r)
    for k, w in weights.items():
        row: list[Fraction | float] = list(advantages(r, k, method))
        for i, a in enumerate(row):
            out[i] += Fraction(w) * Fraction(a)
    return out


def mixture_ustat(rewards: Sequence[Number], weights: Mapping[int, Number]) -> Fraction:
    """sum_K w_K (mean over K-subsets of the subset maximum)."""
    return sum((Fraction(w) * maxk_ustat(rewards, k) for k, w in weights.items()), Fraction(0))


def mixture_objective(probs: Sequence[Number], action_rewards: Sequence[Number],
                      weights: Mapping[int, Number]) -> Fraction:
    """sum_K w_K J_K, each J_K by enumerating every K-tuple of actions."""
    return sum((Fraction(w) * maxk_objective(probs, action_rewards, k) for k, w in weights.items()), Fraction(0))


def mixture_objective_gradient(probs: Sequence[Number], action_rewards: Sequence[Number],
                               weights: Mapping[int, Number]) -> list[Fraction]:
    """sum_K w_K grad J_K with respect to the logits, each by enumeration."""
    out = [Fraction(0)] * len(probs)
    for k, w in weights.items():
        for j, g in enumerate(maxk_objective_gradient(probs, action_rewards, k)):
            out[j] += Fraction(w) * g
    return out


# --------------------------------------------------------------------------- categorical policy
def maxk_objective(probs: Sequence[Number], action_rewards: Sequence[Number], k: int) -> Fraction:
    """J_K = E[max of k i.i.d. rewards] by enumerating all k-tuples of actions."""
    p, r = _exact(probs), _exact(action_rewards)
    total = Fraction(0)
    for tup in itertools.product(range(len(p)), repeat=k):
        total += math.prod((p[a] for a in tup), start=Fraction(1)) * max(r[a] for a in tup)
    return total


def maxk_objective_cdf(probs: Sequence[Number], action_rewards: Sequence[Number], k: int) -> Fraction:
    """J_K from the order-statistic formula sum_x x (F(x)^k - F(x^-)^k), F the reward CDF."""
    p, r = _exact(probs), _exact(action_rewards)
    total = Fraction(0)
    for x in sorted(set(r)):
        f_le = sum((pa for pa, ra in zip(p, r) if ra <= x), Fraction(0))
        f_lt = sum((pa for pa, ra in zip(p, r) if ra < x), Fraction(0))
        total += x * (f_le ** k - f_lt ** k)
    return total


def maxk_objective_gradient(probs: Sequence[Number], action_rewards: Sequence[Number], k: int) -> list[Fraction]:
    """Exact gradient of J_K with respect to the logits of pi = softmax(logits).

    By the score-function identity over all k-tuples: E[max_j r(a_j) * sum_j (e_{a_j} - pi)],
    using grad log softmax(a) = e_a - pi.
    """
    p, r = _exact(probs), _exact(action_rewards)
    n = len(p)
    grad = [Fraction(0)] * n
    for tup in itertools.product(range(n), repeat=k):
        w = math.prod((p[a] for a in tup), start=Fraction(1)) * max(r[a] for a in tup)
        for a in tup:
            for c in range(n):
                grad[c] += w * ((1 if c == a else 0) - p[c])
    return grad


def enumerate_batches(probs: Sequence[Number], action_rewards: Sequence[Number],
                      b: int) -> list[tuple[tuple[int, ...], Fraction, list[Fraction]]]:
    """Every B-tuple of actions with its probability and its rewards."""
    p, r = _exact(probs), _exact(action_rewards)
    return [
        (tup, math.prod((p[a] for a in tup), start=Fraction(1)), [r[a] for a in tup])
        for tup in itertools.product(range(len(p)), repeat=b)
    ]


def expected_gradient(probs: Sequence[Number], batches: Sequence[tuple[tuple[int, ...], Fraction, list[Fraction]]],
                      advantage_rows: Sequence[Sequence[Number]]) -> list[Fraction]:
    """E[sum_i A_i grad log pi(a_i)] over the enumerated batches, for given advantages.

    ``advantage_rows[t]`` are the advantages of batch ``batches[t]`` (Fractions for an
    exact result; floats are converted exactly, so the result then carries their rounding).
    """
    p = _exact(probs)
    n = len(p)
    grad = [Fraction(0)] * n
    for (tup, prob, _), adv in zip(batches, advantage_rows, strict=True):
        for a, ai in zip(tup, adv, strict=True):
            ai = Fraction(ai)
            for c in range(n):
                grad[c] += prob * ai * ((1 if c == a else 0) - p[c])
    return grad


def conditional_mean_advantage(batches: Sequence[tuple[tuple[int, ...], Fraction, list[Fraction]]],
                               advantage_rows: Sequence[Sequence[Number]], n_actions: int) -> list[Fraction]:
    """E[A_1 | a_1 = a] for each action a (sample 1; all samples are exchangeable)."""
    num = [Fraction(0)] * n_actions
    den = [Fraction(0)] * n_actions
    for (tup, prob, _), adv in zip(batches, advantage_rows, strict=True):
        num[tup[0]] += prob * Fraction(adv[0])
        den[tup[0]] += prob
    return [nu / de for nu, de in zip(num, den)]


def true_maxk_advantage(probs: Sequence[Number], action_rewards: Sequence[Number], k: int) -> list[Fraction]:
    """A_K(a) = Q_K(a) - J_K with Q_K(a) = E[max(r(a), R_2, ..., R_k)], by enumeration."""
    p, r = _exact(probs), _exact(action_rewards)
    j = maxk_objective(p, r, k)
    out = []
    for a in range(len(p)):
        q = Fraction(0)
        for tup in itertools.product(range(len(p)), repeat=k - 1):
            q += math.prod((p[c] for c in tup), start=Fraction(1)) * max([r[a], *(r[c] for c in tup)])
        out.append(q - j)
    return out
