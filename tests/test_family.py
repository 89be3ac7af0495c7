"""The loo-1/MaxPO family (maxpo.family) against exact oracles.

Expectations come from :mod:`maxpo.reference` (each method from its defining
formula, in fractions) and from sums written out here, never from the torch code.
"""
from __future__ import annotations

import itertools
import math
from fractions import Fraction

import pytest
import torch

import maxpo
from maxpo import reference
from maxpo.family import (
    batch_optimal_lambda,
    family_gradients,
    lambda_advantages,
    offset_to_noise,
    optimal_lambda,
    variance_quadratic,
)
from maxpo.theory.unified_view import CategoricalPolicy

LAMBDAS = [Fraction(-1, 2), Fraction(0), Fraction(1, 3), Fraction(3, 4), Fraction(1), Fraction(2)]
POLICIES = [
    (CategoricalPolicy.of(["1/2", "1/3", "1/6"], [0, "1/2", 1]), 4, 2),
    (CategoricalPolicy.of(["2/3", "1/3"], [0, 1]), 4, 3),  # binary: pass@3
    (CategoricalPolicy.of(["1/4", "1/4", "1/2"], [1, 0, 3]), 5, 3),
]


def exact_family(rewards: list[Fraction], k: int, lam: Fraction) -> list[Fraction]:
    loo1 = reference.advantages(rewards, k, "pkpo_loo1")
    l2o = reference.advantages(rewards, k, "maxpo")
    return [(1 - lam) * Fraction(a) + lam * Fraction(b) for a, b in zip(loo1, l2o, strict=True)]


def exact_gradient(policy: CategoricalPolicy, b: int, k: int, lam: Fraction) -> list[Fraction]:
    """E[sum_i A_i(lam) (e_{y_i} - pi)] by enumerating every batch, in fractions."""
    p = policy.probs
    grad = [Fraction(0)] * policy.n_actions
    for actions, prob, rewards in reference.enumerate_batches(p, policy.rewards, b):
        for a, ai in zip(actions, exact_family(rewards, k, lam), strict=True):
            for c in range(policy.n_actions):
                grad[c] += prob * ai * (int(a == c) - p[c])
    return grad


@pytest.mark.parametrize("policy,b,k", POLICIES)
@pytest.mark.parametrize("lam", LAMBDAS, ids=str)
def test_family_is_exactly_unbiased(policy: CategoricalPolicy, b: int, k: int, lam: Fraction) -> None:
    # grad J_K from the objective's own enumeration (reference.maxk_objective_gradient)
    assert exact_gradient(policy, b, k, lam) == reference.maxk_objective_gradient(policy.probs, policy.rewards, k)


@pytest.mark.parametrize("policy,b,k", POLICIES)
def test_code_matches_the_exact_family_on_every_batch(policy: CategoricalPolicy, b: int, k: int) -> None:
    batches = reference.enumerate_batches(policy.probs, policy.rewards, b)
    rewards = torch.tensor([[float(r) for r in rw] for _, _, rw in batches], dtype=torch.float64)
    for lam in LAMBDAS:
        got = lambda_advantages(rewards, k, float(lam))
        want = torch.tensor([[float(a) for a in exact_family(rw, k, lam)] for _, _, rw in batches],
                            dtype=torch.float64)
        assert torch.allclose(got, want, rtol=0, atol=1e-12), lam


def test_ends_are_the_two_methods_exactly() -> None:
    r = torch.tensor([[0.3, 1.0, 0.0, 0.7, 0.7], [1.0, 0.0, 0.0, 0.0, 1.0]])
    assert torch.equal(lambda_advantages(r, 3, 0), maxpo.advantages(r, 3, "pkpo_loo1"))
    assert torch.equal(lambda_advantages(r, 3, 1), maxpo.advantages(r, 3, "maxpo"))
    assert lambda_advantages(r, 3, 0.5).dtype == torch.float32
    assert lambda_advantages([[0, 1, 1, 0]], 2, 0.5).dtype == torch.float64


@pytest.mark.parametrize("lam", [Fraction(-1), Fraction(1, 2), Fraction(2)], ids=str)
def test_centred_only_at_one(lam: Fraction) -> None:
    # the batch sum is (1 - lam) K (rho_K - rho_{K-1}) (U-statistics), not 0: a counterexample for lam != 1
    rewards = [Fraction(0), Fraction(1), Fraction(0), Fraction(0)]
    k = 2
    total = sum(exact_family(rewards, k, lam), Fraction(0))
    want = (1 - lam) * k * (reference.maxk_ustat(rewards, k) - reference.maxk_ustat(rewards, k - 1))
    assert total == want and total != 0
    got = lambda_advantages(torch.tensor([[float(x) for x in rewards]], dtype=torch.float64), k, float(lam))
    assert float(got.sum()) == pytest.approx(float(want), abs=1e-12)
    assert sum(exact_family(rewards, k, Fraction(1)), Fraction(0)) == 0
    assert abs(float(lambda_advantages(torch.tensor([[0.0, 1, 0, 0]]), k, 1.0).sum())) < 1e-6


def test_mixture_matches_reference() -> None:
    rewards = [Fraction(1, 2), Fraction(0), Fraction(1), Fraction(1, 4), Fraction(0)]
    weights = {2: Fraction(1), 3: Fraction(1, 2)}
    lam = Fraction(1, 3)
    want = [(1 - lam) * a + lam * b for a, b in zip(reference.mixture_advantages(rewards, weights, "pkpo_loo1"),
                                                    reference.mixture_advantages(rewards, weights, "maxpo"),
                                                    strict=True)]
    got = lambda_advantages(torch.tensor([float(x) for x in rewards], dtype=torch.float64), {2: 1.0, 3: 0.5}, 1 / 3)
    assert got.tolist() == pytest.approx([float(w) for w in want], abs=1e-12)


def test_mask_equals_unpadded() -> None:
    r = torch.tensor([[0.2, 1.0, 0.0, 0.5, 9.0], [1.0, 0.0, 0.0, 1.0, 0.0]], dtype=torch.float64)
    m = torch.tensor([[True, True, True, True, False], [True] * 5])
    got = lambda_advantages(r, 2, 0.4, m)
    assert got[0, 4] == 0
    assert torch.allclose(got[0, :4], lambda_advantages(r[0, :4], 2, 0.4), atol=1e-15)
    assert torch.allclose(got[1], lambda_advantages(r[1], 2, 0.4), atol=1e-15)


# --------------------------------------------------------------------------- variance in lambda
def direct_trace_variance(rows_a: list[list[Fraction]], rows_b: list[list[Fraction]], lam: Fraction) -> Fraction:
    """Unbiased sample trace variance (divisor R - 1) of (1 - lam) a + lam b, written out."""
    g = [[(1 - lam) * x + lam * y for x, y in zip(ra, rb, strict=True)] for ra, rb in zip(rows_a, rows_b, strict=True)]
    r, d = len(g), len(g[0])
    total = Fraction(0)
    for c in range(d):
        mean = sum((row[c] for row in g), Fraction(0)) / r
        total += sum(((row[c] - mean) ** 2 for row in g), Fraction(0)) / (r - 1)
    return total


A_ROWS = [[Fraction(v) for v in row] for row in ([1, 2, 0], [3, -1, 2], [0, 0, 1], [2, 5, -3], [-1, 1, 1])]
B_ROWS = [[Fraction(v) for v in row] for row in ([2, 1, 0], [1, 0, 1], [1, 1, 2], [2, 2, -1], [0, 1, 0])]


def test_quadratic_against_direct_variance() -> None:
    q = variance_quadratic(torch.tensor([[float(x) for x in r] for r in A_ROWS]),
                           torch.tensor([[float(x) for x in r] for r in B_ROWS]))
    for lam in [Fraction(-3, 2), Fraction(0), Fraction(2, 7), Fraction(1), Fraction(5, 2)]:
        assert float(q.at(float(lam))) == pytest.approx(float(direct_trace_variance(A_ROWS, B_ROWS, lam)), rel=1e-13)
    # the argmin and the ratio from the direct variance's three values at -1, 0, 1
    v_m, v_0, v_p = (direct_trace_variance(A_ROWS, B_ROWS, Fraction(x)) for x in (-1, 0, 1))
    a2 = (v_p + v_m) / 2 - v_0
    a1 = (v_p - v_m) / 2
    lam_star = -a1 / (2 * a2)
    choice = optimal_lambda(torch.tensor([[float(x) for x in r] for r in A_ROWS]),
                            torch.tensor([[float(x) for x in r] for r in B_ROWS]))
    assert choice.lam == pytest.approx(float(lam_star), rel=1e-13)
    assert choice.ratio == pytest.approx(float(direct_trace_variance(A_ROWS, B_ROWS, lam_star) / v_p), rel=1e-12)
    assert choice.ratio <= 1


def test_quadratic_batches_leading_dimensions() -> None:
    ga = torch.tensor([[float(x) for x in r] for r in A_ROWS])
    gb = torch.tensor([[float(x) for x in r] for r in B_ROWS])
    q = variance_quadratic(torch.stack([ga, gb]), torch.stack([gb, ga]))
    assert q.v0.shape == (2,)
    assert float(q.v0[1]) == pytest.approx(float(direct_trace_variance(A_ROWS, B_ROWS, Fraction(1))), rel=1e-13)


UNIFORM = CategoricalPolicy.of(["1/3", "1/3", "1/3"], [0, "1/2", 1])


def exact_family_variance(policy: CategoricalPolicy, b: int, k: int, lam: Fraction) -> Fraction:
    """tr Var of sum_i A_i(lam)(e_{y_i} - pi) over every batch, with its exact probability."""
    p, n = policy.probs, policy.n_actions
    rows = []
    for actions, prob, rewards in reference.enumerate_batches(p, policy.rewards, b):
        adv = exact_family(rewards, k, lam)
        rows.append((prob, [sum((adv[i] * (int(a == c) - p[c]) for i, a in enumerate(actions)), Fraction(0))
                            for c in range(n)]))
    mean = [sum((w * g[c] for w, g in rows), Fraction(0)) for c in range(n)]
    return sum((w * sum((g[c] - mean[c]) ** 2 for c in range(n)) for w, g in rows), Fraction(0))


def _uniform_batch(b: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every batch of the uniform policy once (equally likely): rewards (R, B) and scores (R, B, 3)."""
    acts = list(itertools.product(range(3), repeat=b))
    rewards = torch.tensor([[float(UNIFORM.rewards[a]) for a in t] for t in acts], dtype=torch.float64)
    eye = torch.eye(3, dtype=torch.float64)
    scores = torch.stack([eye[list(t)] - 1 / 3 for t in acts])
    return rewards, scores


def test_quadratic_is_the_exact_parabola_on_an_enumerated_policy() -> None:
    # Every batch of a uniform policy is equally likely, so the R = 3^B rows are the whole
    # population: the (R - 1)-divisor estimate times (R - 1)/R is the exact variance.
    b, k = 4, 2
    rewards, scores = _uniform_batch(b)
    g_a, g_b = family_gradients(rewards, k, scores)
    q = variance_quadratic(g_a, g_b)
    r = rewards.shape[0]
    for lam in (Fraction(-1), Fraction(0), Fraction(1, 2), Fraction(1), Fraction(3)):
        exact = exact_family_variance(UNIFORM, b, k, lam)
        assert float(q.at(float(lam))) * (r - 1) / r == pytest.approx(float(exact), rel=1e-12)
    # both ends have the same mean, so raw second moments give the same optimum exactly
    v = [exact_family_variance(UNIFORM, b, k, Fraction(x)) for x in (-1, 0, 1)]
    lam_star = -((v[2] - v[0]) / 2) / (2 * ((v[2] + v[0]) / 2 - v[1]))
    assert optimal_lambda(g_a, g_b).lam == pytest.approx(float(lam_star), rel=1e-11)
    assert batch_optimal_lambda(rewards, k, scores) == pytest.approx(float(lam_star), rel=1e-11)


def test_family_gradients_by_hand() -> None:
    rewards = torch.tensor([0.0, 1.0, 0.5], dtype=torch.float64)
    scores = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]], dtype=torch.float64)
    g_a, g_b = family_gradients(rewards, 2, scores)
    ra = [Fraction(0), Fraction(1), Fraction(1, 2)]
    s = [[1, 0], [0, 2], [1, 1]]
    for got, method in ((g_a, "pkpo_loo1"), (g_b, "maxpo")):
        adv = reference.advantages(ra, 2, method)
        want = [float(sum((Fraction(adv[i]) * s[i][c] for i in range(3)), Fraction(0))) for c in range(2)]
        assert got.tolist() == pytest.approx(want, abs=1e-15)


# --------------------------------------------------------------------------- offset-to-noise
def test_offset_to_noise_against_the_jackknife_by_hand() -> None:
    groups = [[Fraction(0), Fraction(1), Fraction(1, 2), Fraction(0), Fraction(1, 4)],
              [Fraction(1), Fraction(0), Fraction(0), Fraction(0), Fraction(0)]]
    k = 2
    got = offset_to_noise(torch.tensor([[float(x) for x in g] for g in groups], dtype=torch.float64), k)
    for gi, r in enumerate(groups):
        b = len(r)
        dbar = Fraction(k, b) * (reference.maxk_ustat(r, k) - reference.maxk_ustat(r, k - 1))
        # dbar is also the mean loo-1 advantage
        assert sum((Fraction(a) for a in reference.advantages(r, k, "pkpo_loo1")), Fraction(0)) / b == dbar
        rest = [r[:i] + r[i + 1:] for i in range(b)]
        loo = [Fraction(k, b) * (reference.maxk_ustat(o, k) - reference.maxk_ustat(o, k - 1)) for o in rest]
        mean = sum(loo, Fraction(0)) / b
        var = Fraction(b - 1, b) * sum(((x - mean) ** 2 for x in loo), Fraction(0))
        assert float(got.offset[gi]) == pytest.approx(float(dbar), abs=1e-14)
        assert float(got.noise[gi]) == pytest.approx(math.sqrt(var), rel=1e-12)
        rho = float(dbar) / math.sqrt(var)
        assert float(got.ratio[gi]) == pytest.approx(rho, rel=1e-12)
        assert float(got.lam[gi]) == pytest.approx(rho * rho / (1 + rho * rho), rel=1e-12)


def test_offset_to_noise_mask_equals_unpadded() -> None:
    r = torch.tensor([[0.0, 1.0, 0.5, 0.0, 7.0], [1.0, 0.0, 0.25, 0.0, 0.5]], dtype=torch.float64)
    m = torch.tensor([[True, True, True, True, False], [True] * 5])
    got = offset_to_noise(r, 2, m)
    alone = offset_to_noise(r[0, :4], 2)
    assert float(got.offset[0]) == pytest.approx(float(alone.offset), abs=1e-15)
    assert float(got.noise[0]) == pytest.approx(float(alone.noise), abs=1e-15)
    assert float(got.noise[1]) == pytest.approx(float(offset_to_noise(r[1], 2).noise), abs=1e-15)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("lam,exc,words", [
    (float("nan"), ValueError, "finite"), (float("inf"), ValueError, "finite"),
    ("0.5", TypeError, "real number"), (True, TypeError, "real number"), (None, TypeError, "real number"),
])
def test_bad_lambda(lam: object, exc: type[Exception], words: str) -> None:
    with pytest.raises(exc, match=words):
        lambda_advantages([[0.0, 1.0, 0.0, 1.0]], 2, lam)  # type: ignore[arg-type]


@pytest.mark.parametrize("rewards,k,words", [
    ([[0.0, 1.0, 0.0]], 3, "k <= B - 1"),
    ([[0.0, 1.0, 0.0]], 1, "2 <= k"),
    ([[0.0, float("nan"), 0.0]], 2, "NaN|finite"),
    ([[]], 2, "empty"),
])
def test_bad_rewards_or_k(rewards: object, k: int, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        lambda_advantages(rewards, k, 0.5)


def test_bad_k_type() -> None:
    with pytest.raises(TypeError, match="integer"):
        lambda_advantages([[0.0, 1.0, 0.0, 1.0]], 2.5, 0.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("a,b,exc,words", [
    (torch.zeros(5, 2), torch.zeros(5, 3), ValueError, "same shape"),
    (torch.zeros(1, 2), torch.zeros(1, 2), ValueError, "at least 2 repeats"),
    (torch.zeros(5), torch.zeros(5), ValueError, r"\(\.\.\., R, d\)"),
    (torch.tensor([[0.0, float("nan")], [1.0, 1.0]]), torch.zeros(2, 2), ValueError, "NaN"),
    ([["a", "b"], ["c", "d"]], torch.zeros(2, 2), TypeError, "numeric"),
])
def test_bad_gradient_samples(a: object, b: object, exc: type[Exception], words: str) -> None:
    with pytest.raises(exc, match=words):
        variance_quadratic(a, b)


def test_optimal_lambda_without_information() -> None:
    g = torch.tensor([[1.0, 2.0], [0.0, 1.0], [3.0, 1.0]])
    with pytest.raises(ValueError, match="no optimum"):
        optimal_lambda(g, g + 1)
    with pytest.raises(ValueError, match="no reward spread"):
        batch_optimal_lambda(torch.zeros(2, 4), 2, torch.ones(2, 4, 3))


def test_bad_scores_and_offset_input() -> None:
    with pytest.raises(ValueError, match=r"rewards.shape \+ \(d,\)"):
        family_gradients(torch.zeros(2, 4), 2, torch.zeros(2, 3, 5))
    with pytest.raises(ValueError, match="NaN"):
        family_gradients(torch.zeros(1, 4), 2, torch.full((1, 4, 2), float("nan")))
    with pytest.raises(TypeError, match="single integer k"):
        offset_to_noise(torch.zeros(1, 5), {2: 1.0, 3: 1.0})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k <= B - 1"):
        offset_to_noise(torch.zeros(1, 3), 3)
