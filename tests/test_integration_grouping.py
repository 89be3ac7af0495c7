"""The framework-neutral part of ``maxpo.integrations``: grouping, scale, undersized groups,
the exact pitfall computations, and importability without TRL or verl. No TRL, no verl."""
from __future__ import annotations

import dataclasses
import itertools
import subprocess
import sys
import textwrap
import warnings
from fractions import Fraction

import numpy as np
import pytest
import torch

import maxpo
from maxpo import reference
from maxpo.integrations import PER_SAMPLE_RULE, batch_maxk_estimate, group_advantages, group_scale_factors, grouping
from maxpo.integrations.grouping import GroupedAdvantages, check_options
from maxpo.integrations.pitfalls import (
    apply_transform,
    compositions,
    expected_update,
    maxk_gradient,
    pass_rate_profile,
    sequence_weights,
)

from conftest import REPO


def _shuffled_batch(seed: int = 0, sizes: tuple[int, ...] = (5, 8, 3, 6, 8), binary: bool = False):
    rng = np.random.default_rng(seed)
    labels = np.array([f"uid-{g}" for g, s in enumerate(sizes) for _ in range(s)], dtype=object)
    perm = rng.permutation(len(labels))
    labels = labels[perm]
    rewards = (rng.random(len(labels)) < 0.4).astype(float) if binary else rng.random(len(labels))
    return torch.tensor(rewards), labels


@pytest.mark.parametrize("method", ["maxpo", "maxpo_pairwise", "pkpo_s", "pkpo_loo", "canonical", "rloo"])
@pytest.mark.parametrize("scale", ["sum", "per_sample", 0.5])
def test_group_advantages_equal_per_group_maxpo(method, scale):
    rewards, labels = _shuffled_batch()
    k = 2
    out = group_advantages(rewards, labels, k, method, scale=scale)
    assert out.advantages.shape == rewards.shape and out.advantages.dtype == torch.float64
    assert out.undersized == 0 and out.empty == 0 and out.n_groups == 5
    for label in set(labels.tolist()):
        rows = np.nonzero(labels == label)[0]
        b = len(rows)
        raw = maxpo.advantages(rewards[rows], k, method)
        factor = {"sum": 1.0, 0.5: 0.5}.get(scale, b / k if PER_SAMPLE_RULE[method] == "B/K" else 1.0)
        torch.testing.assert_close(out.advantages[rows], raw * factor, rtol=0, atol=1e-12)


def test_per_sample_scale_gives_canonical_and_rloo():
    rewards, labels = _shuffled_batch(1)
    per_sample = group_advantages(rewards, labels, 2, "maxpo").advantages
    canonical = group_advantages(rewards, labels, 2, "canonical", scale="sum").advantages
    torch.testing.assert_close(per_sample, canonical, rtol=0, atol=1e-12)
    k1 = group_advantages(rewards, labels, 1, "maxpo").advantages
    rloo = group_advantages(rewards, labels, 1, "rloo").advantages
    torch.testing.assert_close(k1, rloo, rtol=0, atol=1e-12)


def test_per_sample_rule_matches_method_table():
    assert set(maxpo.METHODS) <= set(PER_SAMPLE_RULE)  # the table may list methods merged in later
    for name in maxpo.METHODS:
        assert (PER_SAMPLE_RULE[name] == "B/K") == (maxpo.METHODS[name]["scale"] == "grad J_K"), name


def test_float32_int_and_device_kept():
    rewards, labels = _shuffled_batch(2, binary=True)
    out32 = group_advantages(rewards.float(), labels, 2).advantages
    assert out32.dtype == torch.float32
    out_int = group_advantages(rewards.long(), labels, 2).advantages
    assert out_int.dtype == torch.float64
    torch.testing.assert_close(out32.double(), out_int, rtol=0, atol=1e-6)


def test_integer_labels_and_tensor_labels():
    rewards = torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9, 1.0, 0.0, 0.0, 1.0])
    by_list = group_advantages(rewards, [0] * 5 + [1] * 4, 2, scale="sum").advantages
    by_tensor = group_advantages(rewards, torch.arange(9) // 5, 2, scale="sum").advantages
    torch.testing.assert_close(by_list, by_tensor)
    expected = torch.tensor([-1 / 15, -1 / 15, -1 / 30, 1 / 30, 2 / 15])  # MATH.md test vector
    torch.testing.assert_close(by_list[:5], expected)


def test_valid_mask_leaves_rows_out():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 5.0, 1.0])
    labels = [0] * 8
    valid = torch.tensor([True] * 6 + [False, True])
    out = group_advantages(rewards, labels, 2, valid=valid, scale="sum").advantages
    kept = valid.nonzero().squeeze(-1)
    torch.testing.assert_close(out[kept], maxpo.advantages(rewards[kept], 2))
    assert out[6] == 0


def test_undersized_groups_zero_with_warning_or_raise():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.3, 0.9])
    labels = ["a", "a", "a", "a", "b", "b"]  # group b has B = 2, too small for maxpo at k = 2
    with pytest.warns(RuntimeWarning, match=r"1 of 2 groups .* 'b' with 2 valid samples"):
        out = group_advantages(rewards, labels, 2)
    assert out.undersized == 1 and torch.all(out.advantages[4:] == 0)
    torch.testing.assert_close(out.advantages[:4], maxpo.advantages(rewards[:4], 2) * 2)
    with pytest.raises(ValueError, match=r"group 'b' \(2 valid samples\) cannot use method 'maxpo' at k = 2"):
        group_advantages(rewards, labels, 2, undersized="raise")
    with pytest.raises(ValueError, match="no group in this batch is usable"):
        group_advantages(rewards, labels, 4)


def test_no_usable_group_is_zero_when_the_trainer_checked_the_size():
    """A trainer that checked B against k at construction: one prompt whose verifier failed on some
    completions is left with too few samples; that is data (advantage 0, counted), not an error."""
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0])
    valid = torch.tensor([True, False, True, True])
    with pytest.warns(RuntimeWarning, match="1 of 1 groups are too small"):
        out = group_advantages(rewards, [0, 0, 0, 0], 3, valid=valid, require_usable=False)
    assert out.undersized == 1 and out.no_signal == 1 and torch.all(out.advantages == 0)
    with pytest.raises(ValueError, match="no group in this batch is usable"):
        group_advantages(rewards, [0, 0, 0, 0], 3, valid=valid)


def _brute_no_signal(rewards, labels, k, method):
    count = 0
    for label in dict.fromkeys(labels):
        rows = [i for i, lab in enumerate(labels) if lab == label]
        exact = reference.advantages([Fraction(float(rewards[i])) for i in rows], k, method)
        count += all(a == 0 for a in exact)
    return count


@pytest.mark.parametrize("method", ["maxpo", "pkpo_loo1", "rloo"])
def test_no_signal_counts_groups_whose_exact_advantages_are_all_zero(method):
    """Binary groups of 6 at k = 3: maxpo is silent when c = 0 or c > B - K = 3; the count must match
    the exact (fractions) advantages of maxpo.reference, group by group."""
    labels, rewards = [], []
    for g, correct in enumerate(range(7)):
        labels += [g] * 6
        rewards += [1.0] * correct + [0.0] * (6 - correct)
    out = group_advantages(torch.tensor(rewards), labels, 3, method)
    assert out.no_signal == _brute_no_signal(rewards, labels, 3, method)
    if method == "maxpo":
        assert out.no_signal == 4  # c = 0, 4, 5, 6; GRPO-style zero-std filters drop only c = 0 and 6


def test_batch_maxk_estimate_against_brute_force():
    rewards, labels = _shuffled_batch(4, sizes=(5, 2, 6, 4))
    valid = torch.ones(len(labels), dtype=torch.bool)
    valid[0] = False
    estimate, used = batch_maxk_estimate(rewards, labels, 3, valid=valid)
    per_group = []
    for label in dict.fromkeys(labels.tolist()):
        group = [Fraction(float(rewards[i])) for i in range(len(labels)) if labels[i] == label and valid[i]]
        if len(group) >= 3:
            subsets = list(itertools.combinations(group, 3))
            per_group.append(sum(max(s) for s in subsets) / len(subsets))
    assert used == len(per_group) == 3
    assert estimate == pytest.approx(float(sum(per_group) / len(per_group)), abs=1e-12)
    assert batch_maxk_estimate(rewards[:2], ["a", "b"], 2) == (pytest.approx(float("nan"), nan_ok=True), 0)


def test_fully_invalid_group_is_empty_not_an_error():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0])
    valid = torch.tensor([True, True, True, False, False])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = group_advantages(rewards, [0, 0, 0, 1, 1], 2, valid=valid)
    assert out.empty == 1 and out.undersized == 0 and torch.all(out.advantages[3:] == 0)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(method="nope"), ValueError, "unknown method 'nope'"),
    (dict(k=0), ValueError, "k must be >= 1"),
    (dict(k=2.0), TypeError, "k must be an integer"),
    (dict(scale="mean"), ValueError, "scale must be one of"),
    (dict(scale=-1.0), ValueError, "must be finite and > 0"),
    (dict(scale=0), ValueError, "must be finite and > 0"),
    (dict(scale=True), TypeError, "scale must be one of"),
    (dict(scale=None), TypeError, "scale must be one of"),
    (dict(undersized="skip"), ValueError, "undersized must be"),
])
def test_bad_options(kwargs, error, match):
    args = dict(rewards=torch.rand(4), group_ids=[0] * 4, k=2)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        group_advantages(**args)


def test_bad_data_names_the_problem():
    with pytest.raises(ValueError, match="got 3 group labels for 4 rewards"):
        group_advantages(torch.rand(4), [0, 0, 0], 2)
    with pytest.raises(ValueError, match=r"reward of row 2 \(group 'x'\) is not finite: nan"):
        group_advantages(torch.tensor([0.0, 1.0, float("nan"), 1.0]), ["x"] * 4, 2)
    with pytest.raises(ValueError, match="1-D"):
        group_advantages(torch.rand(2, 4), [0] * 8, 2)
    with pytest.raises(ValueError, match="needs binary rewards"):
        group_advantages(torch.tensor([0.0, 0.5, 1.0, 1.0]), [0] * 4, 2, "chen_passk")


def test_scale_factors():
    sizes = torch.tensor([4, 8])
    torch.testing.assert_close(group_scale_factors("maxpo", 2, sizes, "per_sample"),
                               torch.tensor([2.0, 4.0], dtype=torch.float64))
    torch.testing.assert_close(group_scale_factors("grpo", 2, sizes, "per_sample"),
                               torch.ones(2, dtype=torch.float64))


def _canonical_exact(values, k):
    """Q_i - V_{-i}^{(k)} by enumeration with fractions: Q_i is the mean over the k - 1 subsets of the
    others of max(r_i, max S), V_{-i} the mean over the k subsets of the others of max S."""
    out = []
    for i, ri in enumerate(values):
        others = values[:i] + values[i + 1:]
        q = [max([ri, *s]) for s in itertools.combinations(others, k - 1)]
        v = [max(s) for s in itertools.combinations(others, k)]
        out.append(Fraction(sum(q), len(q)) - Fraction(sum(v), len(v)))
    return out


def test_signal_labels_sizes_and_the_warning_name_each_kind_of_group():
    """Five groups, interleaved: 'a' has signal, 'b' ties (all rewards equal), 'c' keeps 2 valid rows and
    'e' one (both too small for maxpo at k = 2), 'd' none (empty). The silent non-empty groups are
    b, c, e in order of first appearance; the warning names the first undersized group, c, and points
    at the caller (this file), not at the grouping module."""
    labels = ["a", "b", "c", "d", "e", "a", "b", "c", "d", "e", "a", "b", "c", "a", "b"]
    rewards = [1.0, 0.4, 0.2, 0.3, 0.9, 0.0, 0.4, 0.8, 0.6, 0.5, 0.0, 0.4, 0.7, 1.0, 0.4]
    valid = [True, True, True, False, True, True, True, True, False, False, True, True, False, True, True]
    with pytest.warns(RuntimeWarning, match=r"^2 of 5 groups .* \(e\.g\. group 'c' with 2 valid samples") as rec:
        out = group_advantages(torch.tensor(rewards, dtype=torch.float64), labels, 2, valid=torch.tensor(valid))
    assert len(rec) == 1 and rec[0].filename == __file__
    assert out.labels == ("a", "b", "c", "d", "e") and out.n_groups == 5
    assert out.group_sizes.tolist() == [4, 4, 2, 0, 1]
    assert (out.undersized, out.empty, out.no_signal) == (2, 1, 3)
    assert out.signal.tolist() == [True, False, False, False, False]
    assert out.no_signal_labels == ["b", "c", "e"]
    # group a = [1, 0, 0, 1]: per-sample maxpo is the canonical advantage, +-1/3 (hand: Q = 1 or 2/3, V = 2/3 or 1)
    a_rows = [i for i, lab in enumerate(labels) if lab == "a"]
    expected = _canonical_exact([Fraction(rewards[i]) for i in a_rows], 2)
    assert expected == [Fraction(1, 3), Fraction(-1, 3), Fraction(-1, 3), Fraction(1, 3)]
    torch.testing.assert_close(out.advantages[a_rows], torch.tensor([float(e) for e in expected], dtype=torch.float64),
                               rtol=0, atol=1e-15)
    assert torch.all(out.advantages[[i for i, lab in enumerate(labels) if lab != "a"]] == 0)


def test_grouped_advantages_is_frozen_and_checks_its_lengths():
    out = group_advantages(torch.tensor([1.0, 0.0, 0.0]), [0, 0, 0], 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        out.no_signal = 5  # type: ignore[misc]
    odd = GroupedAdvantages(advantages=torch.zeros(2), group_sizes=torch.tensor([1, 1]), undersized=2, empty=0,
                            no_signal=2, labels=("only one",), signal=torch.tensor([False, False]))
    with pytest.raises(ValueError):  # two groups but one label: refused, not silently truncated
        odd.no_signal_labels  # noqa: B018


def test_a_singleton_group_is_usable_where_the_method_allows_it():
    """dr_grpo (r - mean) runs on a group of one (advantage 0); it must be neither undersized nor empty,
    and the other group's rows must stay in place: 'a' = [1, 0, 0.5] gives [0.5, -0.5, 0]."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = group_advantages(torch.tensor([1.0, 0.7, 0.0, 0.5]), ["a", "s", "a", "a"], 1, "dr_grpo")
    assert (out.undersized, out.empty, out.no_signal) == (0, 0, 1)
    assert out.group_sizes.tolist() == [3, 1] and out.no_signal_labels == ["s"]
    assert out.advantages.tolist() == [0.5, 0.0, -0.5, 0.0]


def test_no_signal_tolerance_is_relative_to_the_largest_reward():
    """|A| <= 1e-9 * max(1, max |r|) counts as no signal. rloo on a pair [0, x] gives +-x exactly
    (x - 0, a difference of two floats one of which is 0)."""
    def silent(pairs):
        rewards = [v for pair in pairs for v in pair]
        labels = [g for g, pair in enumerate(pairs) for _ in pair]
        out = group_advantages(torch.tensor(rewards, dtype=torch.float64), labels, 1, "rloo", scale="sum")
        return out.signal.logical_not().tolist()

    assert silent([(1.0, 0.0), (0.0, 1.5e-9)]) == [False, False]  # 1.5e-9 > 1e-9 * 1
    assert silent([(1.0, 0.0), (0.0, 1e-9)]) == [False, True]  # equal to the tolerance: zero
    assert silent([(1.0, 0.0), (0.0, 0.9e-9)]) == [False, True]
    assert silent([(1000.0, 0.0), (0.0, 5e-7)]) == [False, True]  # 5e-7 <= 1e-9 * 1000
    assert silent([(1000.0, 0.0), (0.0, 2e-6)]) == [False, False]


def test_check_options_returns_plain_int_and_float():
    k, method, scale = check_options(np.int64(3), "maxpo", 2)
    assert (k, method, scale) == (3, "maxpo", 2.0) and type(k) is int and type(scale) is float
    assert check_options(torch.tensor(2), "rloo", "sum") == (2, "rloo", "sum")
    with pytest.raises(ValueError, match="k must be >= 1"):
        check_options(0, "maxpo", "per_sample")


def test_a_method_without_a_per_sample_rule_needs_an_explicit_scale(monkeypatch):
    monkeypatch.setattr(grouping, "PER_SAMPLE_RULE", {m: r for m, r in PER_SAMPLE_RULE.items() if m != "maxrl"})
    rewards, labels = torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=torch.float64), [0] * 4
    with pytest.raises(ValueError, match="no per-sample scale is known for method 'maxrl'"):
        group_advantages(rewards, labels, 2, "maxrl")
    torch.testing.assert_close(group_advantages(rewards, labels, 2, "maxrl", scale="sum").advantages,
                               maxpo.advantages(rewards, 2, "maxrl"))


def test_scale_factors_do_not_alias_the_sizes():
    sizes = torch.tensor([3.0, 5.0], dtype=torch.float64)
    factors = group_scale_factors("maxrl", 2, sizes, "per_sample")  # rule "B": the sizes themselves
    assert factors.tolist() == [3.0, 5.0]
    factors.mul_(2)
    assert sizes.tolist() == [3.0, 5.0]
    assert group_scale_factors("maxpo", 2, sizes, 0.25).tolist() == [0.25, 0.25]


def test_plain_lists_and_arrays_are_accepted():
    """rewards [1, 0, 0.5, 0] in one group at k = 1, rloo: r_i - mean of the others = [5/6, -1/2, 1/6, -1/2]."""
    expected = [5 / 6, -1 / 2, 1 / 6, -1 / 2]
    from_list = group_advantages([1.0, 0.0, 0.5, 0.0], ["p"] * 4, 1, "rloo", valid=[True] * 4).advantages
    from_array = group_advantages(np.array([1.0, 0.0, 0.5, 0.0]), np.array(["p"] * 4), 1, "rloo",
                                  valid=np.ones(4, dtype=bool)).advantages
    for got in (from_list, from_array):
        assert got.dtype == torch.float64
        torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-15)
    with_invalid = group_advantages([1.0, 0.0, 0.5, 9.0], ["p"] * 4, 1, "rloo", valid=[True, True, True, False])
    torch.testing.assert_close(with_invalid.advantages, torch.tensor([0.75, -0.75, 0.0, 0.0], dtype=torch.float64),
                               rtol=0, atol=1e-15)  # [1, 0, 0.5]: 1 - 1/4, 0 - 3/4, 0.5 - 1/2


def test_rewards_that_require_grad_give_a_plain_result():
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.0], requires_grad=True)
    out = group_advantages(rewards, [0] * 4, 1, "rloo").advantages
    assert not out.requires_grad and out.grad_fn is None
    torch.testing.assert_close(out, torch.tensor([5 / 6, -1 / 2, 1 / 6, -1 / 2]), rtol=0, atol=1e-7)
    assert batch_maxk_estimate(rewards, [0] * 4, 4) == (pytest.approx(1.0, abs=1e-12), 1)  # the one subset's max


@pytest.mark.parametrize("valid, match", [
    (torch.tensor([1, 1, 0, 1]), r"valid must be a bool tensor of shape \(4,\), got torch\.int64 \(4,\)"),
    (torch.tensor([True, True, False]), r"valid must be a bool tensor of shape \(4,\), got torch\.bool \(3,\)"),
    (torch.ones(2, 2, dtype=torch.bool), r"got torch\.bool \(2, 2\)"),
])
def test_bad_valid_mask(valid, match):
    with pytest.raises(ValueError, match=match):
        group_advantages(torch.rand(4), [0] * 4, 2, valid=valid)


def test_the_first_non_finite_reward_is_named():
    with pytest.raises(ValueError, match=r"reward of row 1 \(group 'x'\) is not finite: inf"):
        group_advantages(torch.tensor([0.0, float("inf"), 1.0, float("nan"), 1.0]), ["x", "x", "y", "y", "y"], 2)
    valid = torch.tensor([True, False, True, True, True])  # row 1 left out: row 3 is the first that counts
    with pytest.raises(ValueError, match=r"reward of row 3 \(group 'y'\) is not finite: nan"):
        group_advantages(torch.tensor([0.0, float("inf"), 1.0, float("nan"), 1.0]), ["x", "x", "y", "y", "y"], 2,
                         valid=valid)


def test_batch_maxk_estimate_small_groups_lists_and_2d():
    # k = 1: each group's mean; a = [0.3, 0.8] -> 0.55, b = [0.5] -> 0.5; mean 0.525 over 2 groups
    estimate, used = batch_maxk_estimate([0.3, 0.8, 0.5], ["a", "a", "b"], 1)
    assert used == 2 and estimate == pytest.approx(0.525, abs=1e-15)
    # k = 2, every group of exactly 2: its max; a -> 0.8, b -> 0.5, c -> 0.9; a 2-D batch is read row-major
    rewards = torch.tensor([[0.3, 0.8, 0.1], [0.5, 0.2, 0.9]])
    estimate, used = batch_maxk_estimate(rewards, [["a", "a", "b"], ["b", "c", "c"]], 2)
    assert used == 3 and estimate == pytest.approx(2.2 / 3, abs=1e-7)
    with pytest.raises(TypeError, match="k must be an integer"):
        batch_maxk_estimate([0.3, 0.8], ["a", "a"], 2.5)
    with pytest.raises(ValueError, match="k must be >= 1"):
        batch_maxk_estimate([0.3, 0.8], ["a", "a"], 0, valid=[False, False])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_rewards_with_cpu_labels_and_mask():
    rewards, labels = _shuffled_batch(5)
    valid = torch.ones(len(labels), dtype=torch.bool)
    valid[3] = False
    cpu = group_advantages(rewards, labels, 2, valid=valid)
    gpu = group_advantages(rewards.cuda(), labels, 2, valid=valid)
    assert gpu.advantages.device.type == "cuda" and gpu.signal.device.type == "cuda"
    torch.testing.assert_close(gpu.advantages.cpu(), cpu.advantages)
    est_cpu = batch_maxk_estimate(rewards, labels, 3, valid=valid)
    est_gpu = batch_maxk_estimate(rewards.cuda(), labels, 3, valid=valid)
    assert est_gpu[1] == est_cpu[1] and est_gpu[0] == pytest.approx(est_cpu[0], rel=1e-12)


# ----------------------------------------------------------------------------- pitfalls (exact)

def test_compositions():
    c = compositions(8, 3)
    assert c.shape == (45, 3) and torch.all(c.sum(-1) == 8) and len({tuple(r) for r in c.tolist()}) == 45


@pytest.mark.parametrize("method", ["maxpo", "canonical", "pkpo_loo1", "pkpo_s"])
@pytest.mark.parametrize("k", [2, 3])
def test_unbiased_methods_give_the_exact_gradient(method, k):
    values, probs, b = (0.0, 0.4, 1.0), (0.5, 0.3, 0.2), 6
    truth = maxk_gradient(values, probs, k)
    update = expected_update(values, probs, b, k, method, scale="sum")
    factor = {"canonical": b / k}.get(method, 1.0)
    torch.testing.assert_close(update, factor * truth, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(expected_update(values, probs, b, k, method), b / k * truth, rtol=1e-10, atol=1e-12)


def test_std_normalisation_biases_the_pass_rate_profile():
    ps, b, k = [0.05, 0.3, 0.8], 8, 4
    truth = torch.tensor([k * p * (1 - p) ** k for p in ps], dtype=torch.float64)
    plain = pass_rate_profile(ps, b, k) / truth
    torch.testing.assert_close(plain, torch.full_like(plain, b / k))  # per-sample scale: exactly B/K
    normed = pass_rate_profile(ps, b, k, transform="group_std") / truth
    assert normed[-1] / normed[0] > 5  # easy prompts gain weight relative to hard ones


def test_std_normalised_binary_maxpo_is_grpo_where_nonzero():
    r = (torch.rand(4000, 8, generator=torch.Generator().manual_seed(0)) < 0.3).double()
    a = maxpo.advantages(r, 4)
    nonzero = a.abs().sum(-1) > 0
    normed = apply_transform(a, "group_std")[nonzero]
    grpo = maxpo.advantages(r, 4, "grpo")[nonzero]
    # binary rewards: maxpo is alpha (r - mean) per group (alpha = A(correct) - A(wrong)), so TRL's
    # std normalisation (eps 1e-4) gives (r - mean) / (std + 1e-4 / alpha) and GRPO (r - mean) / (std + 1e-6):
    # the two differ only in the epsilon, which is checked to rounding accuracy on both sides
    rn = r[nonzero]
    centered = rn - rn.mean(-1, keepdim=True)
    std = rn.std(-1, keepdim=True, correction=1)
    alpha = a[nonzero].max(-1, keepdim=True).values - a[nonzero].min(-1, keepdim=True).values
    torch.testing.assert_close(normed, centered / (std + 1e-4 / alpha), rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(grpo, centered / (std + 1e-6), rtol=1e-12, atol=1e-15)
    assert bool((normed != grpo).any())


def test_sequence_weights():
    adv, lengths = [1.0, -1.0], [2, 6]
    assert sequence_weights(adv, lengths, "dr_grpo", 8).sum() == 0
    assert sequence_weights(adv, lengths, "token-mean").sum() == 0
    assert sequence_weights(adv, lengths, "grpo").sum() > 0  # short correct answer outweighs the long wrong one
    with pytest.raises(ValueError, match="unknown loss_type"):
        sequence_weights(adv, lengths, "mean")


# ----------------------------------------------------------------------------- without TRL or verl

def test_integrations_import_without_trl_and_verl():
    # None in sys.modules makes `import trl` fail and importlib.util.find_spec("verl") return None,
    # exactly as on a machine where neither is installed.
    code = textwrap.dedent("""
        import sys
        sys.modules["trl"] = sys.modules["verl"] = None
        import maxpo.integrations, maxpo.integrations.trl as t, maxpo.integrations.verl as v
        import maxpo.integrations.demo, maxpo.integrations.pitfalls
        assert sys.modules["trl"] is None and sys.modules["verl"] is None
        for call in (lambda: t.MaxKGRPOTrainer, v.register):
            try:
                call()
            except ImportError as exc:
                assert "pip install" in str(exc), exc
            else:
                raise AssertionError("expected ImportError")
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
