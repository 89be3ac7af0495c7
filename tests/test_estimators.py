"""The torch estimators against exact oracles (fractions, brute force over subsets)."""
from __future__ import annotations

import math
import random
from fractions import Fraction as F

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import maxpo
from maxpo import reference as ref

from expectations import ACCEPTS, accepted, exact_maxpo_closed_form

MAXK_METHODS = ["maxpo", "maxpo_pairwise", "canonical", "pkpo_s", "pkpo_loo", "pkpo_loo1"]
ALL = list(maxpo.METHODS)


def applies(method: str, b: int, k: int, binary: bool) -> bool:
    """Whether the method must accept (B, k): from the hand-written table, not from the code."""
    return accepted(method, b, k, binary)


def as_float(values) -> list[float]:
    return [float(v) for v in values]


# --------------------------------------------------------------------------- MATH.md test vectors
def test_vector_continuous():
    r = [0.1, 0.3, 0.5, 0.7, 0.9]
    exact = [F(1, 10), F(3, 10), F(1, 2), F(7, 10), F(9, 10)]
    expected = {
        "pkpo_s": [F(24, 100), F(24, 100), F(26, 100), F(30, 100), F(36, 100)],
        "pkpo_loo": [F(-43, 300), F(-43, 300), F(-32, 300), F(-10, 300), F(23, 300)],
        "pkpo_loo1": [0, F(2, 100), F(6, 100), F(12, 100), F(20, 100)],
        "maxpo": [F(-1, 15), F(-1, 15), F(-1, 30), F(1, 30), F(2, 15)],
        "maxpo_pairwise": [F(-1, 15), F(-1, 15), F(-1, 30), F(1, 30), F(2, 15)],
    }
    assert ref.maxk_ustat(exact, 2) == F(7, 10)
    assert maxpo.maxk_estimate(torch.tensor(r, dtype=torch.float64), 2).item() == pytest.approx(0.7, abs=1e-15)
    for method, want in expected.items():
        assert ref.advantages(exact, 2, method) == [F(w) for w in want], method
        got = maxpo.advantages(torch.tensor(r, dtype=torch.float64), 2, method)
        np.testing.assert_allclose(got.numpy(), as_float(want), rtol=0, atol=1e-14, err_msg=method)


def test_vector_binary():
    r = [1, 0, 0, 1, 0, 0, 0, 0]
    assert ref.maxk_ustat(r, 4) == F(11, 14)
    assert maxpo.passk_estimate(torch.tensor(r), 4).item() == pytest.approx(11 / 14, abs=1e-15)
    want = [F(3, 14) if v else F(-1, 14) for v in r]
    assert ref.advantages(r, 4, "maxpo") == want
    got = maxpo.advantages(torch.tensor(r), 4)
    np.testing.assert_allclose(got.numpy(), as_float(want), atol=1e-15)
    chen = maxpo.advantages(torch.tensor(r), 4, "chen_passk").numpy()
    assert chen[0] == pytest.approx(0.52223, abs=1e-5) and chen[1] == pytest.approx(-0.17408, abs=1e-5)
    np.testing.assert_allclose(chen, ref.advantages(r, 4, "chen_passk"), atol=1e-14)


# --------------------------------------------------------------------------- against the oracle
reward_values = st.sampled_from([F(0), F(1, 4), F(1, 2), F(3, 4), F(1), F(-3, 2), F(5, 2)])


@settings(max_examples=120, deadline=None)
@given(st.lists(reward_values, min_size=1, max_size=7), st.integers(1, 7), st.sampled_from(ALL))
def test_every_method_matches_oracle(rewards, k, method):
    b = len(rewards)
    binary = all(v in (0, 1) for v in rewards)
    if not applies(method, b, k, binary):
        with pytest.raises(ValueError) as err:
            maxpo.advantages(torch.tensor(as_float(rewards), dtype=torch.float64), k, method)
        if ACCEPTS[method].binary_only and not binary:
            assert str(err.value).startswith(f"{method} needs binary rewards (0 or 1), got "), str(err.value)
        else:
            assert str(err.value).startswith(f"method '{method}' {ACCEPTS[method].refusal_for(b, k)}"), str(err.value)
            assert str(err.value).endswith(f"every group has B = {b} real samples and k = {k}"), str(err.value)
        return
    want = ref.advantages(rewards, k, method)
    got = maxpo.advantages(torch.tensor(as_float(rewards), dtype=torch.float64), k, method)
    np.testing.assert_allclose(got.numpy(), as_float(want), rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from([F(0), F(1)]), min_size=2, max_size=8), st.integers(1, 8))
def test_binary_methods_match_oracle(rewards, k):
    b = len(rewards)
    for method in ALL:
        if not applies(method, b, k, True):
            continue
        want = ref.advantages(rewards, k, method)
        got = maxpo.advantages(torch.tensor(as_float(rewards)), k, method)
        np.testing.assert_allclose(got.numpy(), as_float(want), rtol=1e-6, atol=1e-6, err_msg=method)


def test_masked_groups_equal_separate_groups():
    rng = random.Random(0)
    groups = [[rng.choice([0, 0.25, 0.5, 1.0, 2.0]) for _ in range(n)] for n in (3, 6, 5, 6, 4, 2)]
    width = 7
    pad = torch.full((len(groups), width), float("nan"), dtype=torch.float64)
    mask = torch.zeros((len(groups), width), dtype=torch.bool)
    for g, vals in enumerate(groups):
        cols = sorted(rng.sample(range(width), len(vals)))  # real samples scattered in the row
        pad[g, cols] = torch.tensor(vals, dtype=torch.float64)
        mask[g, cols] = True
    for method in ["maxpo", "maxpo_pairwise", "canonical", "pkpo_s", "rloo", "dr_grpo", "grpo"]:
        got = maxpo.advantages(pad, 1, method, mask=mask)
        assert torch.all(got[~mask] == 0), method
        for g, vals in enumerate(groups):
            np.testing.assert_allclose(got[g][mask[g]].numpy(), as_float(ref.advantages(vals, 1, method)),
                                       atol=1e-12, err_msg=f"{method} group {g}")
    est = maxpo.maxk_estimate(pad, 2, mask=mask)
    for g, vals in enumerate(groups):
        assert est[g].item() == pytest.approx(float(ref.maxk_ustat(vals, 2)), abs=1e-14)


def test_mask_names_the_group_that_is_too_small():
    r = torch.tensor([[0.0, 1.0, 0.5, 0.2], [0.3, 0.1, 9.9, 9.9]])
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    with pytest.raises(ValueError, match=r"group 1 has B = 2 real samples and k = 2"):
        maxpo.advantages(r, 2, "maxpo", mask=mask)
    assert maxpo.advantages(r, 1, "maxpo", mask=mask).shape == r.shape


def test_leading_dims_are_batch():
    g = torch.Generator().manual_seed(1)
    r = torch.rand(2, 3, 6, generator=g, dtype=torch.float64)
    out = maxpo.advantages(r, 3)
    assert out.shape == r.shape
    flat = maxpo.advantages(r.reshape(6, 6), 3)
    assert torch.equal(out.reshape(6, 6), flat)
    assert maxpo.maxk_estimate(r, 3).shape == (2, 3)
    with pytest.raises(ValueError, match=r"group \(1, 2\)"):
        r2 = r.clone()
        r2[1, 2, 4] = float("nan")
        maxpo.advantages(r2, 3)


# --------------------------------------------------------------------------- objective estimates
@settings(max_examples=60, deadline=None)
@given(st.lists(reward_values, min_size=1, max_size=7), st.integers(1, 7))
def test_maxk_estimate_matches_ustat(rewards, k):
    t = torch.tensor(as_float(rewards), dtype=torch.float64)
    if k > len(rewards):
        with pytest.raises(ValueError, match="k <= B"):
            maxpo.maxk_estimate(t, k)
        return
    assert maxpo.maxk_estimate(t, k).item() == pytest.approx(float(ref.maxk_ustat(rewards, k)), abs=1e-13)


@pytest.mark.parametrize("b", [1, 2, 5, 9, 16])
def test_passk_closed_form(b):
    for c in range(b + 1):
        for k in range(1, b + 1):
            want = 1 - F(math.comb(b - c, k), math.comb(b, k))
            got = maxpo.passk_estimate(torch.tensor([1] * c + [0] * (b - c)), k).item()
            assert got == pytest.approx(float(want), abs=1e-14)
    with pytest.raises(ValueError, match="binary"):
        maxpo.passk_estimate(torch.tensor([0.0, 0.5]), 1)


# --------------------------------------------------------------------------- exact unbiasedness
POLICIES = [
    ([F(1, 2), F(1, 3), F(1, 6)], [F(0), F(1, 2), F(1)]),
    ([F(1, 5), F(1, 5), F(3, 5)], [F(2), F(-1), F(0)]),  # unsorted rewards
    ([F(1, 4), F(3, 4)], [F(0), F(1)]),  # pass@K
]
UNBIASED = {  # method -> scale s such that E[g_hat] = s * grad J_K
    "maxpo": lambda b, k: 1, "maxpo_pairwise": lambda b, k: 1, "pkpo_s": lambda b, k: 1,
    "pkpo_loo": lambda b, k: 1, "pkpo_loo1": lambda b, k: 1, "canonical": lambda b, k: F(b, k),
    "tang_loo": lambda b, k: 1,
}


@pytest.mark.parametrize("probs,rewards", POLICIES)
@pytest.mark.parametrize("b", [2, 3, 4])
def test_exact_unbiasedness(probs, rewards, b):
    batches = ref.enumerate_batches(probs, rewards, b)
    batch_rewards = torch.tensor([as_float(x[2]) for x in batches], dtype=torch.float64)
    for k in range(1, b + 1):
        true_grad = ref.maxk_objective_gradient(probs, rewards, k)
        for method, scale in UNBIASED.items():
            if not applies(method, b, k, False):
                continue
            exact_rows = [ref.advantages(x[2], k, method) for x in batches]
            want = [scale(b, k) * g for g in true_grad]
            assert ref.expected_gradient(probs, batches, exact_rows) == want, (method, b, k)
            torch_rows = maxpo.advantages(batch_rewards, k, method).tolist()
            got = ref.expected_gradient(probs, batches, torch_rows)
            np.testing.assert_allclose(as_float(got), as_float(want), atol=1e-13, err_msg=f"{method} b={b} k={k}")


def test_objective_formulas_agree():
    for probs, rewards in POLICIES:
        for k in (1, 2, 3):
            assert ref.maxk_objective(probs, rewards, k) == ref.maxk_objective_cdf(probs, rewards, k)


def test_true_advantage_gives_the_gradient():
    # grad J_K = K * E[A_K(y) grad log pi(y)] and E[A_K(y)] = 0, exactly
    for probs, rewards in POLICIES:
        for k in (1, 2, 3):
            a = ref.true_maxk_advantage(probs, rewards, k)
            assert sum(p * v for p, v in zip(probs, a)) == 0
            n = len(probs)
            grad = [k * sum(probs[x] * a[x] * ((1 if c == x else 0) - probs[c]) for x in range(n)) for c in range(n)]
            assert grad == ref.maxk_objective_gradient(probs, rewards, k)


def test_mean_reward_baselines_are_unbiased_for_the_mean():
    probs, rewards = POLICIES[0]
    b = 3
    batches = ref.enumerate_batches(probs, rewards, b)
    grad1 = ref.maxk_objective_gradient(probs, rewards, 1)
    for method, scale in {"rloo": F(b), "dr_grpo": F(b - 1)}.items():
        rows = [ref.advantages(x[2], 1, method) for x in batches]
        assert ref.expected_gradient(probs, batches, rows) == [scale * g for g in grad1], method


def _torch_rows(batches, k, method):
    return maxpo.advantages(torch.tensor([as_float(x[2]) for x in batches], dtype=torch.float64), k, method).tolist()


def test_grpo_is_biased_for_the_mean_reward():
    # three actions: GRPO's expected update is not even parallel to grad J_1 (no scale makes it unbiased)
    probs, rewards = POLICIES[0]
    b = 3
    batches = ref.enumerate_batches(probs, rewards, b)
    g1 = ref.maxk_objective_gradient(probs, rewards, 1)
    exact = ref.expected_gradient(probs, batches, [ref.advantages(x[2], 1, "grpo") for x in batches])
    got = ref.expected_gradient(probs, batches, _torch_rows(batches, 1, "grpo"))
    np.testing.assert_allclose(as_float(got), as_float(exact), rtol=0, atol=1e-12)
    ratios = [float(g) / float(t) for g, t in zip(got, g1)]
    assert max(ratios) / min(ratios) > 1.5, ratios  # 5.04, 6.93, 4.10: three different scales
    # Dr. GRPO, the same without the std, is parallel with scale B - 1 (the check is able to see it)
    dr = ref.expected_gradient(probs, batches, _torch_rows(batches, 1, "dr_grpo"))
    np.testing.assert_allclose(as_float(dr), [float((b - 1) * t) for t in g1], rtol=0, atol=1e-12)


def test_chen_is_biased_for_pass_at_k():
    probs, rewards = [F(1, 4), F(3, 4)], [F(0), F(1)]
    b, k = 4, 2
    batches = ref.enumerate_batches(probs, rewards, b)
    gk = ref.maxk_objective_gradient(probs, rewards, k)
    exact = ref.expected_gradient(probs, batches, [ref.advantages(x[2], k, "chen_passk") for x in batches])
    got = ref.expected_gradient(probs, batches, _torch_rows(batches, k, "chen_passk"))
    np.testing.assert_allclose(as_float(got), as_float(exact), rtol=0, atol=1e-12)
    ratios = [float(g) / float(t) for g, t in zip(got, gk)]
    # two actions: the same direction, but a scale that is not the unbiased 1
    assert ratios[0] == pytest.approx(ratios[1], rel=1e-12) and abs(ratios[0] - 1) > 0.05, ratios


# --------------------------------------------------------------------------- centering and signs
@settings(max_examples=60, deadline=None)
@given(st.lists(reward_values, min_size=2, max_size=7), st.integers(1, 6))
def test_centering_exact(rewards, k):
    b = len(rewards)
    rho = ref.maxk_ustat(rewards, k) if k <= b else None
    for method in ["maxpo", "canonical", "maxpo_pairwise"]:
        if applies(method, b, k, False):
            assert sum(ref.advantages(rewards, k, method)) == 0
            got = maxpo.advantages(torch.tensor(as_float(rewards), dtype=torch.float64), k, method)
            assert abs(got.sum().item()) <= 1e-12 * max(1.0, got.abs().sum().item())
    if k <= b:
        assert sum(ref.advantages(rewards, k, "pkpo_s")) == k * rho
    if k <= b - 1:
        assert sum(ref.advantages(rewards, k, "pkpo_loo")) == -k * rho / (b - 1)
    if 2 <= k <= b:
        loo1 = maxpo.advantages(torch.tensor(as_float(rewards), dtype=torch.float64), k, "pkpo_loo1")
        assert bool((loo1 >= 0).all())


def test_pkpo_is_not_centered_counterexample():
    r = [0.1, 0.3, 0.5, 0.7, 0.9]
    t = torch.tensor(r, dtype=torch.float64)
    assert maxpo.advantages(t, 2, "pkpo_s").sum().item() == pytest.approx(1.4)
    assert maxpo.advantages(t, 2, "pkpo_loo").sum().item() == pytest.approx(-0.35)
    assert maxpo.advantages(t, 2, "pkpo_loo1").sum().item() == pytest.approx(0.4)
    binary = torch.tensor([1, 0, 0, 1, 0, 0, 0, 0])
    loo1 = maxpo.advantages(binary, 4, "pkpo_loo1")
    assert torch.all(loo1[binary == 0] == 0) and torch.all(loo1[binary == 1] > 0)


# --------------------------------------------------------------------------- invariances
def test_permutation_equivariance_and_ties():
    g = torch.Generator().manual_seed(3)
    r = torch.randint(0, 4, (50, 12), generator=g).to(torch.float32) / 3
    perm = torch.randperm(12, generator=g)
    for method in ["maxpo", "maxpo_pairwise", "canonical", "pkpo_s", "pkpo_loo", "pkpo_loo1"]:
        a = maxpo.advantages(r, 5, method)
        b = maxpo.advantages(r[:, perm], 5, method)
        assert torch.equal(a[:, perm], b), method
        for row_r, row_a in zip(r, a):  # equal rewards -> bit-identical advantages
            for v in row_r.unique():
                vals = row_a[row_r == v]
                assert torch.all(vals == vals[0]), method


def test_shift_and_scale():
    g = torch.Generator().manual_seed(4)
    r = torch.randn(20, 9, generator=g, dtype=torch.float64)
    base = maxpo.advantages(r, 3)
    np.testing.assert_allclose(maxpo.advantages(r + 123.25, 3).numpy(), base.numpy(), atol=1e-12)
    np.testing.assert_allclose(maxpo.advantages(2.5 * r, 3).numpy(), 2.5 * base.numpy(), atol=1e-12)


def test_k1_is_rloo_over_b():
    g = torch.Generator().manual_seed(5)
    r = torch.randn(30, 7, generator=g, dtype=torch.float64)
    np.testing.assert_allclose(maxpo.advantages(r, 1).numpy(), (maxpo.advantages(r, 1, "rloo") / 7).numpy(),
                               atol=1e-14)


def test_canonical_is_b_over_k_maxpo():
    g = torch.Generator().manual_seed(6)
    r = torch.rand(10, 8, generator=g, dtype=torch.float64)
    np.testing.assert_allclose(maxpo.advantages(r, 3, "canonical").numpy(),
                               (8 / 3 * maxpo.advantages(r, 3)).numpy(), atol=1e-14)


def test_float32_matches_float64():
    g = torch.Generator().manual_seed(7)
    r = torch.rand(64, 40, generator=g, dtype=torch.float64)
    for method in MAXK_METHODS:
        a64 = maxpo.advantages(r, 6, method)
        a32 = maxpo.advantages(r.float(), 6, method)
        assert a32.dtype == torch.float32
        np.testing.assert_allclose(a32.double().numpy(), a64.numpy(), rtol=1e-5, atol=1e-6 * a64.abs().max().item())


# --------------------------------------------------------------------------- large B, exactly
def test_closed_form_oracle_agrees_with_brute_force():
    rng = random.Random(8)
    for _ in range(20):
        b = rng.randint(2, 7)
        k = rng.randint(1, b - 1)
        r = [F(rng.randint(-4, 4), 4) for _ in range(b)]
        assert exact_maxpo_closed_form(r, k) == ref.advantages(r, k, "maxpo")


@pytest.mark.parametrize("k", [1, 7, 300, 2999])
def test_large_batch_against_exact_rationals(k):
    rng = random.Random(k)
    b = 3000
    r = [F(rng.randint(-2 ** 20, 2 ** 20), 2 ** 12) for _ in range(b)]  # exactly representable
    want = exact_maxpo_closed_form(r, k)
    got = maxpo.advantages(torch.tensor(as_float(r), dtype=torch.float64), k)
    scale = max(abs(float(w)) for w in want)
    np.testing.assert_allclose(got.numpy(), as_float(want), rtol=0, atol=1e-10 * scale)
    got32 = maxpo.advantages(torch.tensor(as_float(r), dtype=torch.float32), k)
    np.testing.assert_allclose(got32.double().numpy(), as_float(want), rtol=0, atol=1e-6 * scale)


@pytest.mark.parametrize("k", [1, 2, 64, 32768, 65535])
def test_very_large_groups_are_finite_and_centered(k):
    g = torch.Generator().manual_seed(k)
    r = (torch.rand(2, 65536, generator=g) * 4).round() / 4 + torch.rand(2, 1, generator=g) * 1000  # many ties
    a = maxpo.advantages(r, k)
    assert a.dtype == torch.float32 and torch.isfinite(a).all()
    s = a.double().sum(-1).abs()
    assert torch.all(s <= 1e-6 * a.double().abs().sum(-1))
    for row_r, row_a in zip(r, a):
        for v in row_r.unique()[:5]:
            vals = row_a[row_r == v]
            assert torch.all(vals == vals[0])
    assert torch.isfinite(maxpo.maxk_estimate(r, k)).all()


# --------------------------------------------------------------------------- types and devices
def test_types_and_no_grad():
    assert maxpo.advantages([0, 1, 1, 0], 2).dtype == torch.float64
    assert maxpo.advantages(np.array([0.5, 1.5, 1.0], dtype=np.float32), 2).dtype == torch.float64
    assert maxpo.advantages(torch.tensor([True, False, True]), 2).dtype == torch.float64
    ints = maxpo.advantages(torch.tensor([3, 1, 2, 7]), 2)
    np.testing.assert_allclose(ints.numpy(), as_float(ref.advantages([3, 1, 2, 7], 2, "maxpo")), atol=1e-14)
    x = torch.rand(3, 5, dtype=torch.float64, requires_grad=True)
    out = maxpo.advantages(x, 2)
    assert not out.requires_grad and out.grad_fn is None
    assert maxpo.advantages(torch.rand(4, 5, dtype=torch.bfloat16), 2).dtype == torch.bfloat16


def test_methods_table():
    assert set(maxpo.METHODS) == {"maxpo", "maxpo_pairwise", "canonical", "pkpo_s", "pkpo_loo", "pkpo_loo1",
                                  "chen_passk", "tang_loo", "grpo_passk", "maxrl", "grpo", "dr_grpo", "rloo"}
    assert maxpo.METHODS["maxpo"]["unbiased"] and maxpo.METHODS["maxpo"]["centered"]
    assert not maxpo.METHODS["pkpo_loo1"].centered and maxpo.METHODS["pkpo_loo1"].unbiased
    assert not maxpo.METHODS["grpo"].unbiased


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("call,exc,msg", [
    (lambda: maxpo.advantages([0.1, 0.2, 0.3], 0), ValueError, "k must be >= 1"),
    (lambda: maxpo.advantages([0.1, 0.2, 0.3], 1.5), TypeError, "k must be an integer"),
    (lambda: maxpo.advantages([0.1, 0.2, 0.3], True), TypeError, "k must be an integer"),
    (lambda: maxpo.advantages([0.1, 0.2, 0.3], 3), ValueError, "k = B no baseline"),
    (lambda: maxpo.advantages([[0.1, 0.2, 0.3], [0.1, float("nan"), 0.3]], 1), ValueError,
     r"non-finite value \(nan\) in group 1 at position 1"),
    (lambda: maxpo.advantages([0.1, float("inf")], 1), ValueError, "non-finite value"),
    (lambda: maxpo.advantages(torch.zeros(3, 0), 1), ValueError, "empty last dimension"),
    (lambda: maxpo.advantages(torch.tensor(1.0), 1), ValueError, "at least one dimension"),
    (lambda: maxpo.advantages(["a", "b"], 1), TypeError, "numeric"),
    (lambda: maxpo.advantages(torch.tensor([1 + 1j, 2j]), 1), TypeError, "real"),
    (lambda: maxpo.advantages([[0.1, 0.2], [0.3]], 1), ValueError, "rectangular"),
    (lambda: maxpo.advantages(torch.rand(2, 3), 1, mask=torch.ones(2, 4, dtype=torch.bool)), ValueError,
     r"mask has shape \(2, 4\)"),
    (lambda: maxpo.advantages(torch.rand(2, 3), 1, mask=torch.ones(2, 3)), ValueError, "boolean"),
    (lambda: maxpo.advantages(torch.rand(2, 3), 1, mask=torch.tensor([[True] * 3, [False] * 3])), ValueError,
     "group 1 is empty"),
    (lambda: maxpo.advantages([0.1, 0.2], 1, method="nope"), ValueError, "unknown method 'nope'"),
    (lambda: maxpo.advantages([0.0, 0.5, 1.0], 2, method="chen_passk"), ValueError, "binary"),
    (lambda: maxpo.advantages([0.0, 0.5, 1.0], 2, method="tang_loo"), ValueError, "only for k == B"),
    (lambda: maxpo.advantages([0.0, 0.5, 1.0], 1, method="pkpo_loo1"), ValueError, "use rloo"),
    (lambda: maxpo.advantages([0.5], 1, method="rloo"), ValueError, "at least 2 samples"),
    (lambda: maxpo.maxk_estimate([0.1, 0.2], 3), ValueError, "k <= B"),
])
def test_bad_input(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()


def test_masked_padding_may_be_nan():
    r = torch.tensor([[0.2, 0.4, float("nan")]])
    mask = torch.tensor([[True, True, False]])
    out = maxpo.advantages(r, 1, mask=mask)
    assert torch.isfinite(out).all() and out[0, 2] == 0


# --------------------------------------------------------------------------- GPU
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("method", ALL)
def test_cuda_matches_cpu(method):
    g = torch.Generator().manual_seed(9)
    r = (torch.rand(256, 16, generator=g) > 0.6).float()
    k = 16 if method == "tang_loo" else 4
    cpu = maxpo.advantages(r, k, method)
    gpu = maxpo.advantages(r.cuda(), k, method)
    assert gpu.device.type == "cuda" and gpu.dtype == torch.float32
    np.testing.assert_allclose(gpu.cpu().numpy(), cpu.numpy(), atol=1e-6)
