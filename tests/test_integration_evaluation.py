"""Unbiased pass@k / max@k evaluation metrics against exact enumeration in fractions: the mean over all
k-subsets of each prompt's samples (no sorting formula), averaged over prompts, and the standard error
from the exact sample variance of those per-prompt values."""
from __future__ import annotations

import itertools
import math
import random
from fractions import Fraction

import pytest

from maxpo.integrations.evaluation import at_k_metrics, check_ks, per_prompt_estimates


def _subset_mean_of_max(values: list[Fraction], k: int) -> Fraction:
    subsets = list(itertools.combinations(values, k))
    return sum((max(s) for s in subsets), Fraction(0)) / len(subsets)


def _exact(groups: dict[str, list[Fraction]], k: int) -> tuple[Fraction, float, int]:
    per_prompt = [_subset_mean_of_max(v, k) for v in groups.values() if len(v) >= k]
    p = len(per_prompt)
    mean = sum(per_prompt, Fraction(0)) / p
    var = sum(((x - mean) ** 2 for x in per_prompt), Fraction(0)) / (p - 1)
    return mean, math.sqrt(var / p), p


@pytest.mark.parametrize("seed", range(6))
def test_max_at_k_and_its_standard_error_match_enumeration(seed):
    rng = random.Random(seed)
    groups = {f"p{g}": [Fraction(rng.randint(0, 6), 4) for _ in range(rng.randint(1, 7))] for g in range(6)}
    groups["big"] = [Fraction(rng.randint(0, 9), 3) for _ in range(7)]
    groups["other"] = [Fraction(rng.randint(0, 9), 3) for _ in range(5)]
    rows = [(label, r) for label, vals in groups.items() for r in vals]
    rng.shuffle(rows)  # samples of a prompt need not be adjacent
    labels, rewards = [r[0] for r in rows], [float(r[1]) for r in rows]
    metrics = at_k_metrics(rewards, labels, [1, 2, 4, 5])
    for k in (1, 2, 4, 5):
        mean, se, p = _exact(groups, k)
        assert metrics[f"max@{k}"] == pytest.approx(float(mean), abs=1e-12)
        assert metrics[f"max@{k}/se"] == pytest.approx(se, abs=1e-12)
        assert metrics[f"max@{k}/prompts"] == p
    assert "max@8" not in at_k_metrics(rewards, labels, 8)  # no prompt has 8 samples


def test_pass_at_k_one_correct_of_four_is_one_at_k_equal_four():
    """1 correct among n = 4: pass@4 = 1 exactly, pass@1 = 1/4, pass@2 = 1/2 (3 of the 6 pairs)."""
    metrics = at_k_metrics([0, 1, 0, 0], ["a"] * 4, [1, 2, 4], name="pass")
    assert [metrics[f"pass@{k}"] for k in (1, 2, 4)] == pytest.approx([0.25, 0.5, 1.0], abs=1e-12)
    assert math.isnan(metrics["pass@4/se"])  # one prompt: no standard error


def test_unscored_samples_are_left_out():
    est = per_prompt_estimates([1.0, float("nan"), 0.0, 2.0, 3.0], ["a", "a", "a", "b", "b"], 2,
                               valid=[True, False, True, True, True])
    assert est.tolist() == [1.0, 3.0]  # a: {1, 0}; b: {2, 3}
    with pytest.raises(ValueError, match="NaN"):
        per_prompt_estimates([1.0, float("nan")], ["a", "a"], 1)


@pytest.mark.parametrize("bad", [0, -1, [1, 0], "4", [], 2.5, True])
def test_bad_k_lists_are_refused(bad):
    with pytest.raises(ValueError, match="val_k"):
        check_ks(bad, "val_k")
