"""maxpo.experiments.bandits and the bandit study against exact oracles (enumeration in fractions, closed forms)."""
from __future__ import annotations

import itertools
import math
from fractions import Fraction as F

import numpy as np
import pytest
import torch

import maxpo
from maxpo import reference as ref
from maxpo.experiments import bandit_study as bs
from maxpo.experiments.bandits import (
    Bandit,
    Discrete,
    Gaussian,
    LogNormal,
    bernoulli,
    gradient_estimates,
    problem,
    score_sums,
)
from maxpo.experiments.stats import block_sums, chi2_sf, jackknife, seed_band, t975

UNBIASED = ["maxpo", "maxpo_pairwise", "canonical", "pkpo_s", "pkpo_loo", "pkpo_loo1"]


def deterministic_bandit(rewards, logits) -> Bandit:
    return Bandit("det", tuple(Discrete((float(r),), (1.0,)) for r in rewards), tuple(float(v) for v in logits))


def exact_probs(bd: Bandit) -> list[F]:
    """The policy's float probabilities as exact rationals (so oracles see the same numbers)."""
    return [F(float(p)) for p in bd.probs]


# --------------------------------------------------------------------------- exact objective and gradient
@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_objective_and_gradient_match_enumeration_deterministic_arms(k):
    rewards = [0.0, 0.25, 0.5, 0.5, 1.5]
    bd = deterministic_bandit(rewards, [0.3, -0.2, 0.9, 0.1, -1.1])
    p = exact_probs(bd)
    want_j = ref.maxk_objective(p, rewards, k)
    assert want_j == ref.maxk_objective_cdf(p, rewards, k)
    assert float(bd.objective(k)) == pytest.approx(float(want_j), abs=1e-13)
    want_g = [float(v) for v in ref.maxk_objective_gradient(p, rewards, k)]
    np.testing.assert_allclose(bd.gradient(k).numpy(), want_g, rtol=0, atol=1e-13)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_objective_and_gradient_match_enumeration_stochastic_arms(k):
    # Flatten arm a with outcome o into one action of probability pi_a q_a(o): its logit is
    # theta_a + log q_a(o), so d/dtheta_a = sum over o of the flattened logit gradients.
    arms = (Discrete((0.0, 1.0, 3.0), (0.5, 0.25, 0.25)), Discrete((0.5, 2.0), (0.75, 0.25)),
            Discrete((-1.0, 1.0), (0.5, 0.5)))
    bd = Bandit("stoch", arms, (0.4, -0.3, 0.2))
    pi = exact_probs(bd)
    flat_p, flat_r, owner = [], [], []
    for a, arm in enumerate(arms):
        for v, q in zip(arm.values, arm.probs):
            flat_p.append(pi[a] * F(q))
            flat_r.append(F(v))
            owner.append(a)
    want_j = ref.maxk_objective(flat_p, flat_r, k)
    assert float(bd.objective(k)) == pytest.approx(float(want_j), abs=1e-13)
    flat_g = ref.maxk_objective_gradient(flat_p, flat_r, k)
    want_g = [float(sum(g for g, o in zip(flat_g, owner) if o == a)) for a in range(len(arms))]
    np.testing.assert_allclose(bd.gradient(k).numpy(), want_g, rtol=0, atol=1e-13)


@pytest.mark.parametrize("k", [1, 2, 8, 16])
def test_bernoulli_closed_form(k):
    ps = [0.0, 0.05, 0.2, 0.5, 0.9]
    bd = Bandit("b", tuple(bernoulli(p) for p in ps), (0.5, -0.5, 0.0, 1.0, -2.0))
    assert bd.binary
    pi = bd.probs
    pbar = float(pi @ torch.tensor(ps, dtype=torch.float64))
    assert float(bd.objective(k)) == pytest.approx(1 - (1 - pbar) ** k, abs=1e-14)
    want = k * (1 - pbar) ** (k - 1) * pi * (torch.tensor(ps, dtype=torch.float64) - pbar)
    np.testing.assert_allclose(bd.gradient(k).numpy(), want.numpy(), rtol=0, atol=1e-14)


def test_continuous_closed_forms():
    g = Bandit("g", (Gaussian(0.0, 1.0), Gaussian(0.0, 1.0)), (0.0, 0.3))
    assert float(g.objective(1)) == pytest.approx(0.0, abs=1e-13)
    assert float(g.objective(2)) == pytest.approx(1 / math.sqrt(math.pi), abs=1e-13)
    assert float(g.objective(3)) == pytest.approx(1.5 / math.sqrt(math.pi), abs=1e-13)
    mu, s = 0.3, 0.8
    ln = Bandit("ln", (LogNormal(mu, s), LogNormal(mu, s)), (0.0, 1.0))
    mean = math.exp(mu + s * s / 2)
    assert float(ln.objective(1)) == pytest.approx(mean, rel=1e-12)
    # E max of two i.i.d. log-normals = 2 e^{mu + s^2/2} Phi(s / sqrt 2)
    phi = 0.5 * (1 + math.erf(s / math.sqrt(2) / math.sqrt(2)))
    assert float(ln.objective(2)) == pytest.approx(2 * mean * phi, rel=1e-12)


@pytest.mark.parametrize("name", ["light", "heavy", "jackpot"])
def test_mean_reward_objective_and_gradient_k1(name):
    bd = problem(name)
    pi, m = bd.probs, bd.arm_means()
    assert float(bd.objective(1)) == pytest.approx(float(pi @ m), abs=1e-13)
    np.testing.assert_allclose(bd.gradient(1).numpy(), (pi * (m - pi @ m)).numpy(), rtol=0, atol=1e-13)


@pytest.mark.parametrize("k", [2, 5, 16])
def test_gradient_matches_autograd_and_finite_differences(k):
    arms = (Gaussian(0.2, 0.5), LogNormal(-0.5, 1.0), Discrete((0.0, 4.0), (0.9, 0.1)), bernoulli(0.3))
    bd = Bandit("mix", arms, (0.1, -0.4, -1.0, 0.6))
    theta = bd.theta().requires_grad_()
    (auto,) = torch.autograd.grad(bd.objective(k, theta), theta)
    np.testing.assert_allclose(bd.gradient(k).numpy(), auto.numpy(), rtol=0, atol=1e-13)
    h = 1e-5
    for b in range(bd.n_arms):
        e = torch.zeros(bd.n_arms, dtype=torch.float64)
        e[b] = h
        fd = (bd.objective(k, bd.theta() + e) - bd.objective(k, bd.theta() - e)) / (2 * h)
        assert float(fd) == pytest.approx(float(bd.gradient(k)[b]), abs=1e-9)


def test_sampling_follows_the_policy_and_the_arms():
    bd = problem("jackpot", n_arms=4)
    gen = torch.Generator().manual_seed(3)
    arms, rewards = bd.sample(50_000, 4, gen)
    freq = torch.bincount(arms.reshape(-1), minlength=4).double() / arms.numel()
    np.testing.assert_allclose(freq.numpy(), bd.probs.numpy(), atol=0.005)
    jack = rewards[arms == 3]
    assert set(jack.unique().tolist()) <= {0.0, 5.0}
    assert float((jack == 5.0).double().mean()) == pytest.approx(0.05, abs=0.01)
    steady = rewards[arms == 0]
    assert float(steady.mean()) == pytest.approx(0.6, abs=0.005)
    # inverse CDFs invert the CDFs
    u = torch.linspace(0.01, 0.99, 99, dtype=torch.float64)
    for arm in (Gaussian(1.0, 2.0), LogNormal(0.0, 1.2)):
        np.testing.assert_allclose(arm.cdf(arm.icdf(u)).numpy(), u.numpy(), atol=1e-12)
    d = Discrete((2.0, -1.0, 0.5), (0.25, 0.25, 0.5))
    assert d.icdf(torch.tensor([0.1, 0.3, 0.8], dtype=torch.float64)).tolist() == [-1.0, 0.5, 2.0]
    # the same seed gives the same draws
    a2, r2 = bd.sample(50_000, 4, torch.Generator().manual_seed(3))
    assert torch.equal(a2, arms) and torch.equal(r2, rewards)


def test_bad_arms_and_k_are_rejected():
    with pytest.raises(ValueError, match="sum to 1"):
        Discrete((0.0, 1.0), (0.5, 0.6))
    with pytest.raises(ValueError, match="at least two arms"):
        Bandit("x", (bernoulli(0.5),), (0.0,))
    with pytest.raises(ValueError, match="k must be"):
        problem("bernoulli").objective(0)
    with pytest.raises(ValueError, match="unknown bandit"):
        problem("nope")


# --------------------------------------------------------------------------- estimator plumbing, exactly
def _enumerate_stochastic(bd: Bandit, b: int):
    """Every B-tuple of (arm, outcome) with its exact probability, for Discrete arms."""
    pi = exact_probs(bd)
    atoms = [(a, F(v), pi[a] * F(q)) for a, arm in enumerate(bd.arms) for v, q in zip(arm.values, arm.probs)]
    rows = []
    for tup in itertools.product(atoms, repeat=b):
        rows.append(([t[0] for t in tup], [float(t[1]) for t in tup], math.prod((t[2] for t in tup), start=F(1))))
    return rows


def test_every_method_has_a_nominal_scale():
    assert set(bs.NOMINAL) == set(maxpo.METHODS)


@pytest.mark.parametrize("method", UNBIASED + ["tang_loo", "rloo", "dr_grpo"])
def test_gradient_estimates_are_unbiased_by_enumeration(method):
    # E[g / nominal scale] is exactly the gradient of the method's target (J_K, or J_1 for the
    # mean-reward methods)
    bd = Bandit("tiny", (Discrete((0.0, 2.0), (0.5, 0.5)), Discrete((1.0,), (1.0,)), bernoulli(0.25)),
                (0.3, -0.1, 0.5))
    b, k = (3, 3) if method == "tang_loo" else (3, 2)
    rows = _enumerate_stochastic(bd, b)
    arms = torch.tensor([r[0] for r in rows])
    rewards = torch.tensor([r[1] for r in rows], dtype=torch.float64)
    adv = maxpo.advantages(rewards, k, method) / bs.NOMINAL[method].scale(b, k)
    g = gradient_estimates(arms, adv, bd.probs)
    # exact expectation: probabilities as fractions, each estimate converted exactly
    expected = [sum((r[2] * F(float(gi)) for r, gi in zip(rows, g[:, c])), F(0)) for c in range(bd.n_arms)]
    target = bd.gradient(1 if bs.NOMINAL[method].target == "mean" else k)
    np.testing.assert_allclose([float(e) for e in expected], target.numpy(), rtol=0, atol=1e-14)
    # and the zero-mean score sum that the offset analysis adds
    s = score_sums(arms, bd.probs)
    mean_s = [sum((r[2] * F(float(si)) for r, si in zip(rows, s[:, c])), F(0)) for c in range(bd.n_arms)]
    assert max(abs(float(v)) for v in mean_s) < 1e-15


def test_gradient_estimates_match_reference_for_deterministic_arms():
    rewards = [0.0, 1.0, 0.5]
    bd = deterministic_bandit(rewards, [0.2, -0.3, 0.0])
    p = exact_probs(bd)
    batches = ref.enumerate_batches(p, rewards, 4)
    arms = torch.tensor([t[0] for t in batches])
    r = torch.tensor([[float(v) for v in t[2]] for t in batches], dtype=torch.float64)
    adv = maxpo.advantages(r, 2, "maxpo")
    g = gradient_estimates(arms, adv, bd.probs)
    exact_adv = [ref.advantages(t[2], 2, "maxpo") for t in batches]
    want = ref.expected_gradient(p, batches, exact_adv)
    got = [sum((t[1] * F(float(gi)) for t, gi in zip(batches, g[:, c])), F(0)) for c in range(3)]
    np.testing.assert_allclose([float(x) for x in got], [float(x) for x in want], atol=1e-15)
    np.testing.assert_allclose([float(x) for x in want], [float(x) for x in ref.maxk_objective_gradient(p, rewards, 2)],
                               atol=1e-15)


def test_method_offsets_are_the_unified_view():
    # E[A_i] = c exactly (E[A_K(y)] = 0), by enumeration with fractions
    bd = Bandit("tiny", (Discrete((0.0, 2.0), (0.5, 0.5)), Discrete((1.0,), (1.0,))), (0.3, -0.2))
    b, k = 4, 2
    rows = _enumerate_stochastic(bd, b)
    j = {m: F(float(bd.objective(m))) for m in (1, 2)}
    for method in ("maxpo", "pkpo_s", "pkpo_loo", "pkpo_loo1"):
        mean_adv = sum((r[2] * sum(ref.advantages([F(v) for v in r[1]], k, method), F(0)) / b for r in rows), F(0))
        c = bs.method_offset(method, b, k, {m: float(v) for m, v in j.items()})
        assert float(mean_adv) == pytest.approx(c, abs=1e-14), method


# --------------------------------------------------------------------------- statistics helpers
def test_jackknife_of_a_mean_is_the_block_standard_error():
    x = torch.arange(40, dtype=torch.float64) ** 1.5
    sums = {"x": block_sums(x, 8), "n": block_sums(torch.ones(40, dtype=torch.float64), 8)}
    est, se = jackknife(lambda t: t["x"] / t["n"], sums)
    block_means = x.reshape(8, 5).mean(1)
    assert est == pytest.approx(float(x.mean()))
    assert se == pytest.approx(float(block_means.std(correction=1) / math.sqrt(8)), rel=1e-12)


def test_chi2_and_t_quantiles():
    assert chi2_sf(3.0, 2) == pytest.approx(math.exp(-1.5), rel=1e-12)
    assert chi2_sf(0.0, 5) == pytest.approx(1.0)
    assert t975(4) == pytest.approx(2.776) and t975(1000) == pytest.approx(1.96, abs=1e-3)
    mean, lo, hi = seed_band(torch.tensor([[1.0], [3.0]]))
    assert float(mean) == 2.0 and float(hi - mean) == pytest.approx(12.706 * math.sqrt(2) / math.sqrt(2))


# --------------------------------------------------------------------------- a fast study
@pytest.fixture(scope="module")
def quick_study():
    cfg = bs.quick_config(settings=((8, 4), (16, 8)), b_scan=(), draws=3000, blocks=20)
    return cfg, bs.run_bandit_study(cfg, progress=False)


def test_quick_study_sanity(quick_study):
    cfg, res = quick_study
    rows = res["rows"]
    assert {r["problem"] for r in rows} == set(cfg.problems)
    for p in cfg.problems:
        for b, k in cfg.all_settings():
            got = {r["method"] for r in bs.select(rows, problem=p, B=b, K=k)}
            want = {m for m in maxpo.METHODS if bs._applies(m, problem(p), b, k, cfg)}
            assert got == want
            mx = bs.select(rows, problem=p, B=b, K=k, method="maxpo")[0]
            assert mx["var_ratio"] == pytest.approx(1.0) and mx["var_ratio_se"] == pytest.approx(0.0, abs=1e-12)
            for m in ("canonical", "maxpo_pairwise"):
                twin = bs.select(rows, problem=p, B=b, K=k, method=m)[0]
                assert twin["var"] == pytest.approx(mx["var"], rel=1e-9), m
            for r in bs.select(rows, problem=p, B=b, K=k):
                if r["offset"] is not None:  # the mean advantage estimates the unified view's offset
                    assert abs(r["mean_adv"] - r["offset"]) < 5 * r["mean_adv_se"] + 1e-12, r["method"]
                if r["method"] in UNBIASED:  # no significant bias (Bonferroni over this small study)
                    assert r["bias_p"] > 1e-4, r["method"]
                assert -1.0 <= r["cosine"] <= 1.0 and r["var"] > 0
    # the mean-reward methods are biased for max@K where the gradients differ (heavy tails),
    # and unbiased for their own target, the mean-reward gradient
    rl = bs.select(rows, problem="heavy", B=16, K=8, method="rloo")[0]
    assert rl["bias_p"] < 1e-6 and rl["own_target_p"] > 1e-4
    assert rl["rel_bias"] == pytest.approx(rl["predicted_rel_bias"], rel=0.1)
    # PKPO's signal without a baseline is the noisiest unbiased estimator
    for p in cfg.problems:
        s = bs.select(rows, problem=p, B=16, K=8, method="pkpo_s")[0]
        assert s["var_ratio"] > 1.5


def test_quick_study_is_deterministic_and_setting_seeds_are_independent(quick_study):
    cfg, res = quick_study
    again = bs.run_bandit_study(bs.quick_config(problems=("heavy",), settings=((16, 8),), b_scan=(),
                                                draws=3000, blocks=20), progress=False)
    for row in again["rows"]:
        old = bs.select(res["rows"], problem="heavy", B=16, K=8, method=row["method"])[0]
        for key in ("var", "snr", "cosine", "rel_bias", "mean_adv"):
            if row.get(key) is not None:
                assert row[key] == old[key], (row["method"], key)


def test_table_round_trip(quick_study):
    _, res = quick_study
    table = bs.rows_to_table(res["rows"])
    back = bs.rows_from_table(table)
    assert back[0] == {c: res["rows"][0].get(c) for c in table["columns"]}
