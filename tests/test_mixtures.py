"""Mixture objectives sum_K w_K J_K and the methods built on them (maxrl, grpo_passk),
against exact oracles in maxpo.reference (fractions, enumeration over subsets)."""
from __future__ import annotations

import itertools
from fractions import Fraction as F

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import maxpo
from maxpo import reference as ref

LINEAR = [m for m, info in maxpo.METHODS.items() if info.mixtures]


def close(got, want, rel: float = 1e-12) -> None:
    want = np.array([float(v) for v in want])
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), want, rtol=0, atol=rel * scale)


rewards_st = st.lists(st.integers(-4, 4).map(lambda v: F(v, 4)), min_size=2, max_size=6)


@st.composite
def group_and_mixture(draw, k_max_offset: int = 1):
    r = draw(rewards_st)
    b = len(r)
    ks = draw(st.lists(st.integers(1, b - k_max_offset), min_size=1, max_size=b - k_max_offset, unique=True))
    ws = draw(st.lists(st.integers(-6, 6).map(lambda v: F(v, 3)), min_size=len(ks), max_size=len(ks)))
    return r, dict(zip(ks, ws))


# --------------------------------------------------------------------------- against the fractions oracle
@settings(max_examples=60, deadline=None)
@given(group_and_mixture())
def test_maxpo_mixture_matches_oracle(case):
    r, mix = case
    got = maxpo.advantages([float(v) for v in r], {k: float(w) for k, w in mix.items()})
    close(got, ref.mixture_advantages(r, mix, "maxpo"))
    assert abs(float(got.sum())) <= 1e-12 * max(1.0, float(got.abs().sum()))


@settings(max_examples=40, deadline=None)
@given(group_and_mixture(k_max_offset=0))
def test_maxk_estimate_mixture_matches_oracle(case):
    r, mix = case
    got = maxpo.maxk_estimate([float(v) for v in r], {k: float(w) for k, w in mix.items()})
    assert float(got) == pytest.approx(float(ref.mixture_ustat(r, mix)), abs=1e-12)
    if all(v in (0, 1) for v in r):
        assert float(maxpo.passk_estimate([float(v) for v in r], mix)) == pytest.approx(float(got), abs=1e-15)


@pytest.mark.parametrize("method", [m for m in LINEAR if m != "maxpo"])
def test_linear_method_mixtures_match_oracle(method):
    rng = np.random.default_rng(3)
    for b in (3, 4, 5):
        r = [F(int(v), 3) for v in rng.integers(-3, 4, size=b)]
        ks = [k for k in range(1, b + 1) if maxpo.METHODS[method].check(b, k) is None]
        mix = {k: F(int(rng.integers(-3, 4)), 2) for k in ks}
        close(maxpo.advantages([float(v) for v in r], mix, method), ref.mixture_advantages(r, mix, method))


def test_documented_mixture_methods():
    assert LINEAR == ["maxpo", "maxpo_pairwise", "pkpo_s", "pkpo_loo", "pkpo_loo1"]
    with pytest.raises(ValueError, match="does not take a mixture"):
        maxpo.advantages([0.0, 1.0, 2.0], {1: 1.0}, "canonical")


# --------------------------------------------------------------------------- masks, ties, batches
def test_masked_ragged_groups_match_each_group_alone():
    rng = np.random.default_rng(0)
    rows, mask = rng.normal(size=(4, 7)), np.ones((4, 7), dtype=bool)
    mask[1, 5:] = False
    mask[2, 4:] = False
    mix = {1: 0.5, 2: -1.25, 3: 2.0}
    got = maxpo.advantages(torch.tensor(rows), mix, mask=torch.tensor(mask))
    est = maxpo.maxk_estimate(torch.tensor(rows), mix, mask=torch.tensor(mask))
    for g in range(4):
        real = rows[g][mask[g]]
        alone = maxpo.advantages(torch.tensor(real), mix)
        torch.testing.assert_close(got[g][torch.tensor(mask[g])], alone, rtol=0, atol=1e-14)
        assert bool((got[g][~torch.tensor(mask[g])] == 0).all())
        close(alone, ref.mixture_advantages(list(real), mix))
        assert float(est[g]) == pytest.approx(float(ref.mixture_ustat(list(real), mix)), abs=1e-12)


def test_mixture_key_too_large_for_one_masked_group_names_it():
    r = torch.zeros(3, 6)
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[2, 3:] = False
    with pytest.raises(ValueError, match=r"group 2 has B = 3 real samples and the mixture key K = 3"):
        maxpo.advantages(r, {1: 1.0, 3: 1.0}, mask=mask)


def test_ties_get_identical_advantages():
    r = torch.tensor([[0.5, 1.0, 0.5, 1.0, 0.0, 0.5, 1.0]], dtype=torch.float64)
    a = maxpo.advantages(r, {1: 1.0, 2: -3.0, 5: 0.25})[0]
    for v in (0.0, 0.5, 1.0):
        same = a[r[0] == v]
        assert bool((same == same[0]).all())
    close(a, ref.mixture_advantages([F(1, 2), 1, F(1, 2), 1, 0, F(1, 2), 1], {1: 1, 2: -3, 5: F(1, 4)}))


def test_single_key_mixture_equals_int_k():
    r = torch.randn(5, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for k in (1, 4, 8):
        torch.testing.assert_close(maxpo.advantages(r, {k: 1.0}), maxpo.advantages(r, k), rtol=0, atol=1e-15)
        torch.testing.assert_close(maxpo.maxk_estimate(r, {k: 2.0}), 2 * maxpo.maxk_estimate(r, k),
                                   rtol=0, atol=1e-14)


@pytest.mark.parametrize("bad, match", [
    ({}, "empty mapping"),
    ({2.0: 1.0}, "not an integer K"),
    ({True: 1.0}, "not an integer K"),
    ({"2": 1.0}, "not an integer K"),
    ({0: 1.0}, "out of range"),
    ({2: float("nan")}, "not finite"),
    ({2: float("inf")}, "not finite"),
    ({2: "1"}, "not a real number"),
    ({5: 1.0}, "mixture key K = 5"),
])
def test_bad_mixtures_raise_clear_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        maxpo.advantages([0.0, 1.0, 2.0, 3.0, 4.0], bad)


def test_maxk_estimate_refuses_key_above_b():
    with pytest.raises(ValueError, match="mixture key K = 4"):
        maxpo.maxk_estimate([0.0, 1.0, 2.0], {1: 1.0, 4: 1.0})


# --------------------------------------------------------------------------- exact unbiasedness
def test_mixture_unbiased_and_centred_by_enumeration_real_rewards():
    probs = [F(1, 2), F(1, 3), F(1, 6)]
    action_rewards = [F(-1, 2), F(1, 3), F(2)]
    b = 4
    mix = {1: F(1, 2), 2: F(-1), 3: F(5, 2)}
    batches = ref.enumerate_batches(probs, action_rewards, b)
    rows = [ref.mixture_advantages(r, mix, "maxpo") for _, _, r in batches]
    assert all(sum(row) == 0 for row in rows)  # centred in every batch, exactly
    assert ref.expected_gradient(probs, batches, rows) == ref.mixture_objective_gradient(probs, action_rewards, mix)
    # the torch estimator gives the same advantages, so the same expected gradient up to rounding
    est = maxpo.advantages(torch.tensor([[float(v) for v in r] for _, _, r in batches], dtype=torch.float64),
                           {k: float(w) for k, w in mix.items()})
    close(est.reshape(-1), [a for row in rows for a in row])


# --------------------------------------------------------------------------- maxrl
def test_maxrl_published_form_every_b_and_c():
    for b in range(2, 9):
        for c in range(b + 1):
            r = [1] * c + [0] * (b - c)
            got = maxpo.advantages(torch.tensor(r, dtype=torch.float64), b - 1, "maxrl")
            rbar = F(c, b)
            want = [(v - rbar) / (b * rbar) if c else 0 for v in r]
            close(got, want, rel=1e-15)
            assert ref.advantages(r, b - 1, "maxrl") == want


def test_maxrl_published_form_is_evaluated_directly_to_a_few_ulps():
    """At k = B - 1 MaxRL is (r_i - rbar) / (B rbar), evaluated as written: rbar = c/B rounded once, and
    1 - rbar amplifies that rounding by at most c/(B - c) <= B - 1, so with the subtraction, the product
    and the division the relative error is at most (B + 3) u (u = 2^-53). The harmonic max@k mixture,
    equal in exact arithmetic, accumulates up to ~150 u here (B = 30), so this also checks that the
    published form, not the mixture, is what runs at k = B - 1."""
    u = 2.0 ** -53
    for b in range(2, 33):
        for c in range(1, b + 1):
            r = [1] * c + [0] * (b - c)
            got = maxpo.advantages(torch.tensor(r, dtype=torch.float64), b - 1, "maxrl").tolist()
            for v, a in zip(r, got):
                want = (v - F(c, b)) / c  # (r_i - rbar) / (B rbar) with rbar = c / B, exactly
                if want == 0:
                    assert a == 0, (b, c)
                else:
                    assert abs(F(a) - want) <= (b + 3) * u * abs(want), (b, c, v, a)


def test_maxrl_equals_harmonic_maxpo_mixture_exactly():
    for b in range(2, 8):
        for c in range(b + 1):
            r = [1] * c + [0] * (b - c)
            harmonic = {k: F(1, k) for k in range(1, b)}
            assert ref.advantages(r, b - 1, "maxrl") == ref.mixture_advantages(r, harmonic, "maxpo")


def test_maxrl_other_k_is_truncated_harmonic_mixture():
    r = torch.tensor([[1.0, 0, 0, 1, 0, 0, 0], [0, 0, 1, 0, 0, 0, 0]], dtype=torch.float64)
    for k in (1, 3, 5):
        close(maxpo.advantages(r, k, "maxrl").reshape(-1),
              [a for row in r.tolist() for a in ref.advantages(row, k, "maxrl")])
        torch.testing.assert_close(maxpo.advantages(r, k, "maxrl"),
                                   maxpo.advantages(r, {j: 1 / j for j in range(1, k + 1)}), rtol=0, atol=1e-15)


def test_maxrl_unbiased_for_harmonic_objective_truncated_at_b_minus_1():
    probs, action_rewards = [F(1, 2), F(1, 3), F(1, 6)], [0, 1, 0]
    for b in (3, 4):
        batches = ref.enumerate_batches(probs, action_rewards, b)
        rows = [ref.advantages(r, b - 1, "maxrl") for _, _, r in batches]
        assert all(sum(row) == 0 for row in rows)
        harmonic = {k: F(1, k) for k in range(1, b)}
        assert ref.expected_gradient(probs, batches, rows) == \
            ref.mixture_objective_gradient(probs, action_rewards, harmonic)
        with_b = {**harmonic, b: F(1, b)}  # the K = B term is not part of its target
        assert ref.expected_gradient(probs, batches, rows) != \
            ref.mixture_objective_gradient(probs, action_rewards, with_b)


def test_maxrl_refuses_non_binary_and_k_b():
    with pytest.raises(ValueError, match="binary"):
        maxpo.advantages([0.0, 0.5, 1.0], 2, "maxrl")
    with pytest.raises(ValueError, match="1 <= k <= B - 1"):
        maxpo.advantages([0.0, 1.0, 1.0], 3, "maxrl")
    with pytest.raises(ValueError, match="does not take a mixture"):
        maxpo.advantages([0.0, 1.0, 1.0], {1: 1.0}, "maxrl")


# --------------------------------------------------------------------------- grpo_passk
def test_grpo_passk_matches_oracle_and_ties_give_zero():
    rng = np.random.default_rng(5)
    for b in (2, 3, 5, 8):
        for _ in range(5):
            r = [F(int(v), 4) for v in rng.integers(0, 5, size=b)]
            got = maxpo.advantages([float(v) for v in r], b, "grpo_passk")
            close(got, ref.advantages(r, b, "grpo_passk"), rel=1e-14)
            assert int((got != 0).sum()) <= 1
    assert bool((maxpo.advantages([1.0, 0.0, 1.0], 3, "grpo_passk") == 0).all())
    for b, k in itertools.product(range(1, 5), range(1, 6)):
        ok = maxpo.METHODS["grpo_passk"].check(b, k) is None
        assert ok == (k == b >= 2), (b, k)


def test_grpo_passk_equals_verl_as_it_ships():
    core_algos = pytest.importorskip("verl.trainer.ppo.core_algos")
    rng = np.random.default_rng(11)
    scores = torch.tensor(rng.integers(0, 4, size=(6, 5)) / 3, dtype=torch.float32)
    scores[0] = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0])  # a tie at the top
    index = np.array([str(g) for g in range(6) for _ in range(5)], dtype=object)
    token_rewards = torch.zeros(30, 3)
    token_rewards[:, -1] = scores.reshape(-1)
    verl_adv, _ = core_algos.compute_grpo_passk_outcome_advantage(
        token_level_rewards=token_rewards, response_mask=torch.ones(30, 3), index=index,
        config={"norm_adv_by_std_in_grpo": True})
    ours = maxpo.advantages(scores, 5, "grpo_passk")
    torch.testing.assert_close(verl_adv[:, 0].reshape(6, 5), ours, rtol=1e-6, atol=1e-6)


# Accepted mixture keys K at group size B, written by hand from each method's definition (not read from
# METHODS): maxpo / maxpo_pairwise / pkpo_loo need a max@K estimate from the other B - 1 samples
# (1 <= K <= B - 1); pkpo_s needs K <= B; pkpo_loo1's baseline is a max@(K - 1) estimate (2 <= K <= B).
MIXTURE_BOUNDS = {"maxpo": (1, -1), "maxpo_pairwise": (1, -1), "pkpo_s": (1, 0), "pkpo_loo": (1, -1),
                  "pkpo_loo1": (2, 0)}


def test_every_mixture_method_has_hand_written_bounds():
    assert set(MIXTURE_BOUNDS) == set(LINEAR)


@pytest.mark.parametrize("method", sorted(MIXTURE_BOUNDS))
@pytest.mark.parametrize("b", [4, 6])
def test_mixture_keys_refused_below_and_above_each_methods_bounds(method, b):
    lo, hi_off = MIXTURE_BOUNDS[method]
    hi = b + hi_off
    r = torch.linspace(0.0, 1.0, b, dtype=torch.float64)
    # both ends accepted, alone and together with a key inside
    for keys in ({lo: 1.0}, {hi: 1.0}, {lo: 0.5, hi: -2.0}, {lo: 1.0, (lo + hi) // 2: 1.0, hi: 1.0}):
        assert torch.isfinite(maxpo.advantages(r, keys, method=method)).all()
    # one step outside either end is refused, whether the bad key is the smallest, the largest or alone
    below = lo - 1
    if below >= 1:  # K = 0 is refused for every method by the key check itself
        for keys in ({below: 1.0}, {below: 1.0, hi: 1.0}):
            with pytest.raises(ValueError, match=f"method '{method}'.*mixture key K = {below}"):
                maxpo.advantages(r, keys, method=method)
    else:
        with pytest.raises(ValueError, match="out of range"):
            maxpo.advantages(r, {0: 1.0, hi: 1.0}, method=method)
    for keys in ({hi + 1: 1.0}, {lo: 1.0, hi + 1: 1.0}):
        with pytest.raises(ValueError, match=f"method '{method}'.*mixture key K = {hi + 1}"):
            maxpo.advantages(r, keys, method=method)
