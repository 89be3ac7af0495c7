"""Statistics of lab comparisons: per-puzzle pass@k, the paired bootstrap, the gradient-variance measurement."""
from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from maxpo.lab.stats import paired_bootstrap_ci, passk_per_puzzle

torch.set_num_threads(1)


@pytest.mark.parametrize("n, k", [(6, 1), (6, 3), (8, 8), (5, 2)])
def test_per_puzzle_passk_is_the_share_of_k_subsets_with_a_correct_answer(n: int, k: int) -> None:
    for c in range(n + 1):
        answers = [1] * c + [0] * (n - c)
        subsets = list(itertools.combinations(range(n), k))
        want = Fraction(sum(any(answers[i] for i in s) for s in subsets), len(subsets))
        assert math.isclose(passk_per_puzzle([c], n, k)[0], float(want), rel_tol=0, abs_tol=1e-12)


def test_bootstrap_of_two_puzzles_and_one_seed_spans_them() -> None:
    """One seed, two puzzles with differences x < y: resampled means are x, (x+y)/2, y with chances 1/4, 1/2, 1/4,
    so the 95% interval runs from x to y."""
    a = np.array([[0.3, 0.9]])
    b = np.array([[0.1, 0.2]])
    ci = paired_bootstrap_ci(a, b, n_boot=4000, seed=1)
    assert ci["lo"] == pytest.approx(0.2) and ci["hi"] == pytest.approx(0.7) and ci["diff"] == pytest.approx(0.45)


def test_bootstrap_pairs_the_noise_away() -> None:
    """b = a - 0.1 exactly, with large noise shared by both: the paired interval is the point 0.1."""
    rng = np.random.default_rng(0)
    a = rng.random((5, 64))
    ci = paired_bootstrap_ci(a, a - 0.1)
    assert ci["lo"] == pytest.approx(0.1) and ci["hi"] == pytest.approx(0.1)


def test_bootstrap_interval_widens_with_seed_noise() -> None:
    rng = np.random.default_rng(1)
    b = rng.random((5, 64))
    quiet = paired_bootstrap_ci(b + 0.05, b)
    noisy = paired_bootstrap_ci(b + 0.05 + rng.normal(0, 0.1, size=(5, 1)), b)
    assert quiet["hi"] - quiet["lo"] < 1e-12 < noisy["hi"] - noisy["lo"]
    with pytest.raises(ValueError, match="same non-empty shape"):
        paired_bootstrap_ci(b, b[:, :3])


def test_gradient_variance_in_a_small_model() -> None:
    """MaxPO scaled by B/K is the canonical advantage (test_estimators), so their gradients and every statistic
    agree; the statistics are in range, and the unbiased squared mean norm is below the plain one."""
    from maxpo.lab.config import EvalConfig, LabConfig, ModelSpec, RLConfig, WarmStartConfig
    from maxpo.lab.gradvar import gradient_variance
    from maxpo.lab.task import TaskConfig
    from maxpo.lab.warmstart import warm_start

    cfg = LabConfig(task=TaskConfig(n_numbers=2, max_number=9, max_target=81),
                    model=ModelSpec(n_layer=2, n_head=4, d_model=64),
                    warmstart=WarmStartConfig(steps=80, batch_size=128, lr=3e-3),  # held-out pass@1 about 0.1
                    rl=RLConfig(k=2, samples_per_prompt=4, max_new_tokens=8),
                    eval=EvalConfig(prompts=8, samples=4, ks=(1, 2)), device="cpu")
    model, tok, _ = warm_start(cfg, torch.device("cpu"), bf16=False, show=False, use_cache=False)
    out = gradient_variance(model, tok, cfg, ["maxpo", "canonical", "grpo"], prompts=6, repeats=6, seed=0)
    assert out["mixed_group_share"] > 0
    a, b = out["methods"]["maxpo"], out["methods"]["canonical"]
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=1e-6), key
    for v in out["methods"].values():
        assert v["total_variance"] > 0 and -1 <= v["cosine_to_mean"] <= 1
    assert all(p.grad is None for p in model.parameters())  # the model is left without gradients


# ---------------------------------------------------------------- power (maxpo.lab.stats) and maxpo.lab.analysis
def test_variance_components_by_hand() -> None:
    """d = [[1, 2, 3], [3, 4, 8]]: grand mean 3.5, row means 2 and 5, column means 2, 3, 5.5;
    MS_seed = 3 * 4.5 = 13.5, MS_puzzle = 2 * 6.5 / 2 = 6.5, residuals +-0.5, +-0.5, -+1 give MS_e = 3 / 2 = 1.5;
    seed = (13.5 - 1.5) / 3 = 4, puzzle = (6.5 - 1.5) / 2 = 2.5."""
    from maxpo.lab.stats import standard_error, variance_components

    c = variance_components(np.array([[1.0, 2, 3], [3, 4, 8]]))
    assert (c["seed"], c["puzzle"], c["residual"], c["mean"]) == pytest.approx((4.0, 2.5, 1.5, 3.5))
    assert standard_error(c, 2, 3) == pytest.approx(math.sqrt(4 / 2 + 2.5 / 3 + 1.5 / 6))
    with pytest.raises(ValueError, match="at least 2"):
        variance_components(np.ones((1, 5)))


def test_standard_error_matches_simulated_crossed_effects() -> None:
    """Simulated d = mu + alpha_s + beta_p + eps: the components are recovered on average and the formula's
    standard error matches the spread of the mean difference over many simulated comparisons."""
    from maxpo.lab.stats import standard_error, variance_components

    rng = np.random.default_rng(7)
    s, p, sims = 6, 40, 3000
    true = {"seed": 0.3**2, "puzzle": 0.5**2, "residual": 1.0}
    means, comps = [], []
    for _ in range(sims):
        d = (0.2 + rng.normal(0, 0.3, (s, 1)) + rng.normal(0, 0.5, (1, p)) + rng.normal(0, 1.0, (s, p)))
        means.append(d.mean())
        comps.append(variance_components(d))
    for key in true:
        assert np.mean([c[key] for c in comps]) == pytest.approx(true[key], rel=0.08)
    assert np.std(means) == pytest.approx(standard_error(true, s, p), rel=0.05)


def test_power_and_seeds_needed_by_hand() -> None:
    """residual 1, no seed or puzzle variance: SE = 1/sqrt(S P). With S P = 100, an effect of
    (1.959964 + 0.841621) / 10 has power 0.80; with P = 1 and effect 0.5, sqrt(S) >= 5.6032 needs S = 32."""
    from maxpo.lab.stats import power, seeds_needed

    comp = {"seed": 0.0, "puzzle": 0.0, "residual": 1.0}
    assert power(comp, 0.2801585, 1, 100) == pytest.approx(0.80, abs=1e-4)
    assert power(comp, 0.0, 1, 100) == pytest.approx(0.025, abs=1e-4)
    assert seeds_needed(comp, 0.5, 1) == 32
    # a puzzle variance that more seeds cannot remove: out of reach with 4 puzzles
    assert seeds_needed({"seed": 0.0, "puzzle": 1.0, "residual": 0.0}, 0.5, 4) is None


def _toy_comparison() -> dict:
    """Two methods x two seeds x three puzzles, n = 4 answers; counts chosen by hand."""
    counts = {("a", 0): [4, 0, 2], ("a", 1): [3, 1, 2], ("b", 0): [2, 0, 1], ("b", 1): [1, 0, 2]}
    base = {0: [1, 0, 1], 1: [1, 0, 1]}
    runs = [{"method": m, "seed": s, "final_correct_counts": c, "baseline_correct_counts": base[s],
             "curve_correct_counts": [base[s], c]} for (m, s), c in counts.items()]
    return {"methods": ["a", "b"], "seeds": [0, 1], "runs": runs,
            "config": {"eval": {"samples": 4, "curve_samples": 4}}}


def test_passk_differences_at_every_k_by_hand() -> None:
    """pass@1 = c / 4; pass@2 = 1 - C(4-c, 2)/6 gives 0, 1/2, 5/6, 1, 1 for c = 0..4.
    a - b at k = 1: ((4-2) + 0 + (2-1) + (3-1) + 1 + 0) / 4 / 6 = 6/24 = 0.25;
    at k = 2: ((1 - 5/6) + 0 + (5/6 - 1/2) + (1 - 1/2) + 1/2 + (5/6 - 5/6)) / 6 = 1.5/6 = 0.25;
    a - warm start at k = 1: ((4-1) + 0 + (2-1) + (3-1) + 1 + (2-1)) / 4 / 6 = 8/24."""
    from maxpo.lab.analysis import has_curve_counts, passk_differences

    res = _toy_comparison()
    d = {x["k"]: x for x in passk_differences(res, "a", "b", n_boot=500)}
    assert sorted(d) == [1, 2, 3, 4]
    assert d[1]["diff"] == pytest.approx(0.25) and d[2]["diff"] == pytest.approx(0.25)
    assert all(x["lo"] <= x["diff"] <= x["hi"] for x in d.values())
    w = passk_differences(res, "a", "warm start", ks=[1], n_boot=200)[0]
    assert w["diff"] == pytest.approx(8 / 24)
    assert has_curve_counts(res)
    assert passk_differences(res, "a", "b", ks=[2], n_boot=200, curve=True)[0]["diff"] == pytest.approx(0.25)
    res["runs"][0]["curve_correct_counts"] = []
    assert not has_curve_counts(res)
    with pytest.raises(ValueError, match="no per-puzzle counts"):
        passk_differences(res, "a", "b", ks=[2], curve=True)


def test_power_analysis_of_a_toy_comparison() -> None:
    from maxpo.lab.analysis import power_analysis

    out = power_analysis(_toy_comparison(), "a", "b", 1, effects=[0.25], seeds_grid=(2, 4), puzzles_grid=(3, 6))
    assert out["observed"] == pytest.approx(0.25)
    assert len(out["table"]) == 4 and all(0 <= r["power"] <= 1 for r in out["table"])
    by = {(r["seeds"], r["puzzles"]): r["power"] for r in out["table"]}
    assert by[(2, 3)] <= by[(4, 3)] <= by[(4, 6)]  # more seeds or puzzles never lower the power
