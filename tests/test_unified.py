"""The unified view by exact enumeration, the method table, and the float64 moments."""
from __future__ import annotations

from fractions import Fraction

import pytest

import maxpo
from maxpo import reference
from maxpo.theory import unified_view as unified
from maxpo.theory.unified_view import CategoricalPolicy

REAL = CategoricalPolicy.of(["1/2", "1/3", "1/6"], [0, "1/2", 1])
REAL2 = CategoricalPolicy.of(["2/5", "2/5", "1/5"], ["1/5", "1/2", 1])
BINARY = CategoricalPolicy.of(["1/2", "1/4", "1/4"], [0, 0, 1])
BINARY2 = CategoricalPolicy.of(["1/3", "1/2", "1/6"], [0, 1, 1])

EXPECTED_OFFSET = {"maxpo": "0", "maxpo_pairwise": "0", "canonical": "0", "pkpo_s": "(K/B) J_K",
                   "pkpo_loo": "-K J_K / (B (B-1))", "pkpo_loo1": "(K/B) (J_K - J_{K-1})"}


def test_policy_validation() -> None:
    with pytest.raises(ValueError):
        CategoricalPolicy.of(["1/2", "1/3"], [0, 1])
    with pytest.raises(ValueError):
        CategoricalPolicy.of(["1/2"], [0, 1])
    assert BINARY.binary and not REAL.binary
    assert REAL.objective(0) == 0
    assert REAL.objective(2) == reference.maxk_objective(REAL.probs, REAL.rewards, 2)


@pytest.mark.parametrize("b,k", [(3, 1), (3, 2), (4, 2), (4, 3)])
@pytest.mark.parametrize("policy", [REAL, BINARY])
def test_offsets_match_formulas(policy: CategoricalPolicy, b: int, k: int) -> None:
    for name, formula in EXPECTED_OFFSET.items():
        if maxpo.METHODS[name].check(b, k) is not None:
            continue
        scale = Fraction(b, k) if name == "canonical" else Fraction(1)
        c = unified.offset(policy, b, k, name, scale)
        assert c is not None
        assert c == unified.OFFSET_FORMULAS[formula](b, k, policy.objective)
        assert formula in unified.identify_offset(c, policy, b, k)


@pytest.mark.parametrize("b,k", [(3, 2), (4, 3)])
def test_canonical_is_conditionally_unbiased(b: int, k: int) -> None:
    assert unified.conditional_mean(REAL, b, k, "canonical") == REAL.true_advantage(k)
    assert all(s == 0 for s in unified.batch_sums(REAL, b, k, "canonical"))


def test_offset_none_when_not_affine() -> None:
    # rloo's conditional mean is r(a) - E r, not affine in A_K for K = 3 with three reward levels
    assert unified.offset(REAL, 4, 3, "rloo") is None


def test_gradient_scale() -> None:
    assert unified.gradient_scale(REAL, 4, 2, "maxpo") == 1
    assert unified.gradient_scale(REAL, 4, 2, "canonical") == 2
    assert unified.gradient_scale(REAL, 4, 2, "rloo", target_k=1) == 4
    assert unified.gradient_scale(REAL, 4, 2, "rloo") is None  # not parallel to grad J_2
    assert "grad J_K" in unified.identify_scale(REAL, 4, 2, "pkpo_loo1")


def test_reward_type() -> None:
    assert unified.reward_type("chen_passk") == "binary (pass@K)"
    assert unified.reward_type("maxpo") == "real"
    assert unified.reward_type("tang_loo") == "real"


def test_method_table_matches_declared_metadata() -> None:
    rows = unified.method_table([REAL, REAL2, BINARY, BINARY2], [(3, 1), (3, 2), (4, 3), (3, 3)])
    assert [r["method"] for r in rows] == list(maxpo.METHODS)
    for row in rows:
        info = maxpo.METHODS[row["method"]]
        assert row["unbiased"] == info.unbiased, row
        assert row["centered"] == info.centered, row
        assert (row["rewards"] != "real") == info.binary_only, row
        if row["unbiased"]:
            assert row["scale"] == info.scale, row
        if row["offset"] is not None:
            assert row["offset"] == info.offset, row
        assert row["configs"] > 0
        assert row["offset"] in unified.FORMULA_TEXT or row["offset"] is None


def test_gradient_moments_agree_with_exact() -> None:
    probs = [float(p) for p in REAL.probs]
    rewards = [float(r) for r in REAL.rewards]
    b, k = 4, 2
    mom = unified.gradient_moments(probs, rewards, b, k, "maxpo")
    exact = [float(g) for g in REAL.objective_gradient(k)]
    assert max(abs(m - e) for m, e in zip(mom["mean"], exact)) < 1e-12
    cm = [float(v) for v in unified.conditional_mean(REAL, b, k, "maxpo")]
    assert max(abs(m - e) for m, e in zip(mom["conditional_mean"], cm)) < 1e-12
    assert mom["mean_abs_sum"] < 1e-12
    assert mom["batches"] == 3 ** b
    assert unified.gradient_moments(probs, rewards, b, k, "pkpo_s")["mean_abs_sum"] > 0.1


def test_shifted_variance_is_the_parabola() -> None:
    probs, rewards, b, k = [0.5, 0.3, 0.2], [0.0, 0.4, 1.0], 4, 2
    v0, v1, v2 = unified.shifted_variance(probs, rewards, b, k)
    assert abs(v0 - unified.gradient_moments(probs, rewards, b, k, "maxpo")["total_variance"]) < 1e-12
    assert v2 > 0
    # adding a constant c is the pkpo family's structure: check one point by brute force
    import itertools

    import torch

    c = 0.3
    p = torch.tensor(probs, dtype=torch.float64)
    r = torch.tensor(rewards, dtype=torch.float64)
    acts = torch.tensor(list(itertools.product(range(3), repeat=b)))
    w = p[acts].prod(-1)
    adv = maxpo.advantages(r[acts], k) + c
    score = torch.nn.functional.one_hot(acts, 3).double() - p
    g = torch.einsum("Nb,Nbn->Nn", adv, score)
    mean = (w[:, None] * g).sum(0)
    var = float((w * ((g - mean) ** 2).sum(-1)).sum())
    assert abs(var - (v0 + 2 * v1 * c + v2 * c * c)) < 1e-12


def test_gradient_moments_refuses_huge_enumeration() -> None:
    with pytest.raises(ValueError, match="too many"):
        unified.gradient_moments([0.5, 0.5], [0, 1], 22, 2, "maxpo")
    with pytest.raises(ValueError, match="too many"):
        unified.shifted_variance([0.5, 0.5], [0, 1], 22, 2)
