"""The TRL mixin's advantage path without a trainer: rewards, advantages, metrics and the prompt-layout check
of :class:`maxpo.integrations.trl.MaxKAdvantageMixin`, against brute force in fractions (maxpo.reference).

Fast (no model, no trainer): the mutation target ``trl_advantages`` runs these; the trainer-level tests in
``test_integration_trl.py`` check that TRL actually trains on these advantages.
"""
from __future__ import annotations

import itertools
import math
import warnings
from fractions import Fraction
from typing import Any

import pytest
import torch

pytest.importorskip("trl")
from maxpo import reference  # noqa: E402
from maxpo.integrations import trl as mtrl  # noqa: E402

NAN = float("nan")


def _fake(k: int, method: str = "maxpo", scale: Any = "per_sample", weights: tuple[float, ...] = (1.0, 0.5),
          prompts: list[str] | None = None) -> Any:
    """A mixin instance without GRPOTrainer.__init__: only the attributes the advantage path reads."""

    class Fake(mtrl.MaxKAdvantageMixin):
        pass

    f = Fake.__new__(Fake)
    f.reward_weights = torch.tensor(weights)
    f.maxk_k, f.maxk_method, f.maxk_scale, f.maxk_undersized = k, method, scale, "zero"
    f._logs = {"prompt": list(prompts or [])}
    return f


# rows: two functions; group 0 (rows 0-3) fully scored, group 1 (rows 4-7) with one unscorable row (both None)
RPF = torch.tensor([[1.0, 0.0], [0.0, 1.0], [NAN, 2.0], [0.5, 0.5],
                    [1.0, NAN], [NAN, NAN], [0.0, 0.0], [2.0, 2.0]], dtype=torch.float64)
# sum_f w_f r_f with NaN as 0, weights (1, 0.5), by hand
REWARDS = [1.0, 0.5, 1.0, 0.75, 1.0, 0.0, 0.0, 3.0]
VALID = [True, True, True, True, True, False, True, True]


def test_rewards_are_the_weighted_sum_with_unscored_rows_marked() -> None:
    rewards, valid = _fake(2).maxk_rewards(RPF)
    assert rewards.tolist() == REWARDS and valid.tolist() == VALID


@pytest.mark.parametrize("method, k, scale", [("maxpo", 2, "per_sample"), ("maxpo", 1, "sum"),
                                              ("pkpo_loo1", 2, 2.5), ("rloo", 1, "per_sample")])
def test_advantages_per_group_against_brute_force(method: str, k: int, scale: Any) -> None:
    got = _fake(k, method, scale).maxk_advantages(RPF, 4)
    for rows in (range(0, 4), range(4, 8)):
        real = [i for i in rows if VALID[i]]
        want = reference.advantages([Fraction(REWARDS[i]) for i in real], k, method)
        b = len(real)
        if scale == "per_sample":  # B/K for the sum-convention methods, 1 for rloo (the module docstring's rule)
            factor = Fraction(b, k) if method in ("maxpo", "pkpo_loo1") else Fraction(1)
        else:
            factor = Fraction(1) if scale == "sum" else Fraction(scale)
        for i, w in zip(real, want):
            assert float(got.advantages[i]) == pytest.approx(float(w * factor), abs=1e-12), (i, method)
    assert float(got.advantages[5]) == 0.0  # the unscorable row
    assert got.group_sizes.tolist() == [4, 3] and got.undersized == 0 and got.empty == 0


def test_a_group_left_too_small_gets_zero_and_is_counted() -> None:
    # maxpo at K = 3 needs B >= 4: group 1 keeps only 3 scored rows
    f = _fake(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = f.maxk_advantages(RPF, 4)
    assert got.advantages[4:].tolist() == [0.0] * 4 and got.undersized == 1
    want = reference.advantages([Fraction(r) for r in REWARDS[:4]], 3, "maxpo")
    assert got.advantages[:4].tolist() == pytest.approx([float(w * Fraction(4, 3)) for w in want], abs=1e-12)


def test_a_batch_that_is_not_whole_groups_is_refused() -> None:
    with pytest.raises(RuntimeError, match="TRL gathered 8 rewards, not a multiple of the group size 3"):
        _fake(2).maxk_advantages(RPF, 3)


def _maxk(values: list[float], k: int) -> Fraction:
    subsets = list(itertools.combinations([Fraction(v) for v in values], k))
    return sum((max(s) for s in subsets), Fraction(0)) / len(subsets)


@pytest.mark.parametrize("k", [2, 4])
def test_metrics_by_hand(k: int) -> None:
    f = _fake(k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = f.maxk_advantages(RPF, 4)
    m = f.maxk_metrics(RPF, 4, result)
    scored = [i for i in range(8) if VALID[i]]
    assert m["maxk/unscored_completions"] == 1.0
    assert m["maxk/mean_abs_advantage"] == pytest.approx(
        sum(abs(float(result.advantages[i])) for i in scored) / len(scored), abs=1e-12)
    groups = [[REWARDS[i] for i in range(g, g + 4) if VALID[i]] for g in (0, 4)]
    usable = [g for g in groups if len(g) >= k]
    assert m[f"maxk/max@{k}"] == pytest.approx(float(sum(_maxk(g, k) for g in usable) / len(usable)), abs=1e-12)
    # k = 4: group 1 (3 scored rows) is too small for maxpo (K <= B - 1), and so is group 0 (B = 4)
    silent = sum(all(float(result.advantages[i]) == 0 for i in range(g, g + 4)) for g in (0, 4))
    assert m["maxk/no_signal_frac"] == pytest.approx(silent / 2)
    assert m["maxk/undersized_groups"] == float(sum(len(g) < k + 1 for g in groups))
    assert (silent, m["maxk/undersized_groups"]) == ((0, 0.0) if k == 2 else (2, 2.0))


def test_metrics_of_a_batch_without_a_scored_row() -> None:
    rpf = torch.full((4, 2), NAN, dtype=torch.float64)
    f = _fake(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = f.maxk_advantages(rpf, 4)
    m = f.maxk_metrics(rpf, 4, result)
    # one group of 4 rows, none scored: an empty group, counted as a group without signal
    assert m == {"maxk/no_signal_frac": 1.0, "maxk/mean_abs_advantage": 0.0, "maxk/undersized_groups": 0.0,
                 "maxk/unscored_completions": 4.0, "maxk/empty_groups": 1.0}
    assert not math.isnan(m["maxk/mean_abs_advantage"])


def test_prompt_layout_check() -> None:
    _fake(2, prompts=["a", "a", "b", "b"])._check_groups_are_prompts(4, 2)
    _fake(2, prompts=["x", "a", "a", "b", "b"])._check_groups_are_prompts(4, 2)  # the last n prompts count
    with pytest.raises(RuntimeError, match="prompt log holds 2 prompts where the gathered batch of 4"):
        _fake(2, prompts=["a", "a"])._check_groups_are_prompts(4, 2)  # a shorter log: fails loudly, never skips
    with pytest.raises(RuntimeError, match="rows 2..3 of the gathered batch are not one prompt"):
        _fake(2, prompts=["a", "a", "b", "c"])._check_groups_are_prompts(4, 2)
    with pytest.raises(RuntimeError, match="rows 0..2 of the gathered batch"):
        _fake(2, prompts=["a", "b", "b", "c", "c", "c"])._check_groups_are_prompts(6, 3)


def test_float32_rewards_stay_float32_and_the_mean_abs_advantage_is_summed_in_float64() -> None:
    # TRL keeps float32 rewards; weights given in float64 must not promote them
    rpf = torch.tensor([[0.1], [0.7], [0.3], [0.9], [0.11], [0.13], [0.17], [0.71]], dtype=torch.float32)
    f = _fake(2, weights=(0.3,))
    f.reward_weights = torch.tensor([0.3], dtype=torch.float64)
    rewards, _ = f.maxk_rewards(rpf)
    assert rewards.dtype == torch.float32
    result = f.maxk_advantages(rpf, 4)
    assert result.advantages.dtype == torch.float32
    m = f.maxk_metrics(rpf, 4, result)
    want = math.fsum(abs(float(a)) for a in result.advantages) / 8  # the float32 values, summed exactly
    assert m["maxk/mean_abs_advantage"] == pytest.approx(want, rel=1e-14)


def test_prompt_layout_check_with_groups_of_one() -> None:
    _fake(1, method="pkpo_s", prompts=["a", "b", "c"])._check_groups_are_prompts(3, 1)
