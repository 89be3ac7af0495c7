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
