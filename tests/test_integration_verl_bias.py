"""verl's bootstrap best@k next to the unbiased pass@k (maxpo.integrations.verl_bias), against brute force.

The bootstrap's value is enumerated over every tuple of k indices drawn with
replacement (in fractions), its expectation over the sampling over every
outcome of the n samples; the unbiased estimate is 1 - C(n-c, k)/C(n, k) and
the prompts' pass@k 1 - mean (1 - p)^k, both in fractions. verl's own
functions are random (a seeded bootstrap): they are compared with the exact
value within a tolerance derived from their number of draws.
"""
from __future__ import annotations

import itertools
import math
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest

pytest.importorskip("verl")

from maxpo.integrations import verl_bias as vb  # noqa: E402
from maxpo.integrations.evaluation import at_k_metrics  # noqa: E402


def _bootstrap_brute(samples: list[int], k: int) -> Fraction:
    """Mean over all n^k index tuples (with replacement) of the best sample."""
    n = len(samples)
    tuples = list(itertools.product(range(n), repeat=k))
    return Fraction(sum(max(samples[i] for i in t) for t in tuples), len(tuples))


def _unbiased(c: int, n: int, k: int) -> Fraction:
    return 1 - Fraction(math.comb(n - c, k), math.comb(n, k))


@pytest.mark.parametrize("n, c, k", [(4, 1, 4), (4, 2, 3), (5, 1, 2), (5, 3, 5), (3, 0, 3), (3, 3, 2)])
def test_bootstrap_limit_is_the_mean_over_every_draw_with_replacement(n, c, k):
    samples = [1] * c + [0] * (n - c)
    want = _bootstrap_brute(samples, k)
    assert want == 1 - Fraction(n - c, n) ** k  # the closed form the docs state
    assert vb.bootstrap_limit([c], n, k) == pytest.approx(float(want), abs=1e-15)
    if 0 < c < n and k > 1:
        assert float(want) < float(_unbiased(c, n, k))  # reads low


def test_one_correct_of_four_verl_reads_0684_where_pass_at_4_is_1():
    """verl's own validation metric on [0, 1, 0, 0]: best@4 is 1 - (3/4)^4 = 175/256 up to its 1000 draws."""
    want = 1 - Fraction(3, 4) ** 4
    assert want == Fraction(175, 256)
    best = vb.verl_best_at_k(["u"] * 4, [0, 1, 0, 0])
    assert sorted(best) == [2, 4]  # verl reports k = 2, 4, ..., n
    tol = vb.bootstrap_tolerance([1], 4, 4)
    assert tol == pytest.approx(4 * math.sqrt(float(want) * (1 - float(want)) / 1000), rel=1e-12)
    assert abs(best[4] - float(want)) < tol
    assert abs(best[2] - float(1 - Fraction(3, 4) ** 2)) < vb.bootstrap_tolerance([1], 4, 2)
    assert at_k_metrics([0, 1, 0, 0], ["u"] * 4, 4, name="pass")["pass@4"] == pytest.approx(1, abs=1e-12)


@pytest.mark.parametrize("n, c, k", [(4, 1, 4), (6, 2, 3), (8, 1, 8)])
def test_verls_bootstrap_metric_converges_to_the_limit(n, c, k):
    """verl's bootstrap_metric itself, with many draws: within 4 standard deviations of the exact value."""
    from verl.trainer.ppo.metric_utils import bootstrap_metric

    draws = 40_000
    state = np.random.get_state()
    try:
        [(mean, _)] = bootstrap_metric([1.0] * c + [0.0] * (n - c), k, [np.max], n_bootstrap=draws, seed=7)
    finally:
        np.random.set_state(state)
    want = float(1 - Fraction(n - c, n) ** k)
    assert abs(mean - want) < vb.bootstrap_tolerance([c], n, k, draws=draws)


def test_verls_number_of_bootstrap_draws_is_the_one_the_tolerance_assumes(monkeypatch):
    from verl.trainer.ppo import metric_utils

    seen = []
    original = metric_utils.bootstrap_metric

    def spy(*args, **kwargs):
        seen.append(kwargs["n_bootstrap"])
        return original(*args, **kwargs)

    monkeypatch.setattr(metric_utils, "bootstrap_metric", spy)
    vb.verl_best_at_k(["a"] * 3, [0.0, 1.0, 1.0])
    assert seen and set(seen) == {vb.VERL_BOOTSTRAP_DRAWS}


@pytest.mark.parametrize("p", [Fraction(1, 3), Fraction(1, 10), Fraction(3, 4)])
def test_bootstrap_expectation_sums_every_outcome_of_the_samples(p):
    n = 4
    for k in (1, 2, 4):
        want = Fraction(0)
        for outcome in itertools.product((0, 1), repeat=n):
            c = sum(outcome)
            want += p ** c * (1 - p) ** (n - c) * _bootstrap_brute(list(outcome), k)
        assert vb.bootstrap_expectation([float(p)], n, k) == pytest.approx(float(want), abs=1e-14)
        # the unbiased estimate's expectation is the prompt's pass@k
        unbiased = sum((math.comb(n, c) * p ** c * (1 - p) ** (n - c) * _unbiased(c, n, k) for c in range(n + 1)),
                       Fraction(0))
        assert unbiased == 1 - (1 - p) ** k
        assert vb.exact_pass_at_k([float(p)], k) == pytest.approx(float(unbiased), abs=1e-15)
        if k > 1:
            assert want < unbiased


def test_study_on_a_small_validation_set():
    p = [0.0, 1.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.15] * 3
    n = 8
    study = vb.bias_study(p, n, seed=3)
    uids, rewards = vb.simulate_validation(p, n, seed=3)
    assert set(np.unique(rewards)) <= {0.0, 1.0} and len(uids) == len(p) * n
    counts = Counter()
    for uid, r in zip(uids, rewards):
        counts[uid] += int(r)
    correct = [counts[f"prompt-{i}"] for i in range(len(p))]
    assert correct[0] == 0 and correct[1] == n  # p = 0 and p = 1
    assert [row["k"] for row in study.rows] == [2, 4, 8]
    for row in study.rows:
        k = int(row["k"])
        unbiased = sum((_unbiased(c, n, k) for c in correct), Fraction(0)) / len(p)
        assert row["unbiased"] == pytest.approx(float(unbiased), abs=1e-12)
        per_prompt = [float(_unbiased(c, n, k)) for c in correct]
        assert row["se"] == pytest.approx(float(np.std(per_prompt, ddof=1) / math.sqrt(len(p))), abs=1e-12)
        limit = sum((1 - Fraction(n - c, n) ** k for c in correct), Fraction(0)) / len(p)
        assert row["limit"] == pytest.approx(float(limit), abs=1e-12)
        assert abs(row["verl"] - row["limit"]) < row["tolerance"]
        exact = 1 - sum((1 - Fraction(q).limit_denominator(100)) ** k for q in p) / len(p)
        assert row["exact"] == pytest.approx(float(exact), abs=1e-12)
        assert row["bias"] == pytest.approx(row["verl"] - row["exact"], abs=1e-15)
    assert study.curve["k"] == list(range(1, n + 1))
    assert study.curve["unbiased"][0] == pytest.approx(float(Fraction(sum(correct), n * len(p))), abs=1e-12)


def test_verls_call_leaves_numpys_global_generator_alone():
    np.random.seed(123)
    want = np.random.random(3)
    np.random.seed(123)
    vb.verl_best_at_k(["a"] * 4 + ["b"] * 4, [0, 1, 0, 0, 1, 1, 0, 1])
    assert np.array_equal(np.random.random(3), want)


def test_bad_probabilities_are_refused():
    with pytest.raises(ValueError, match="probabilities"):
        vb.simulate_validation([0.5, 1.2], 4)
    with pytest.raises(ValueError, match="probabilities"):
        vb.exact_pass_at_k([], 2)


def test_figure_has_every_curve_and_verls_points():
    study = vb.bias_study([0.1, 0.3, 0.05, 0.6] * 4, 8, seed=1)
    fig = vb.bias_figure(study)
    names = [t.name for t in fig.data]
    assert names == ["unbiased ± 1.96 se", "exact pass@k of the prompts", "unbiased estimate (maxpo)",
                     "bootstrap, expected value", "verl best@k (bootstrap)"]
    verl = fig.data[-1]
    assert list(verl.x) == [2, 4, 8] and list(verl.y) == [r["verl"] for r in study.rows]
    band = fig.data[0]
    assert len(band.x) == 2 * 8 and all(0 <= y <= 1 for y in band.y)
    assert list(fig.data[1].y) == pytest.approx([vb.exact_pass_at_k(study.p, k) for k in range(1, 9)])
