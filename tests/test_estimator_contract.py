"""The estimators' contract, checked against expectations that do not come from the code.

* which (method, B, K) are accepted, from a hand-written grid, with the exact refusal;
* every floating dtype gives the float64 result rounded once to that dtype, bit for bit;
* tied rewards get bit-identical advantages with float64 input (where rounding would show);
* ``maxpo_pairwise``'s chunked path (many groups x B^2) against the exact oracles.
"""
from __future__ import annotations

import random
import re
from fractions import Fraction as F

import numpy as np
import pytest
import torch

import maxpo
import maxpo.estimators as est
from maxpo import reference as ref

from expectations import ACCEPTS, GRID_B, GRID_K, GUARANTEES, accepted, exact_maxpo_closed_form

LOW_PRECISION = [torch.float16, torch.bfloat16, torch.float32]


def test_acceptance_table_covers_every_method() -> None:
    # a new method needs its row in tests/expectations.py
    assert set(ACCEPTS) == set(maxpo.METHODS)


@pytest.mark.parametrize("method", list(GUARANTEES))
def test_method_flags_are_the_documented_guarantees_and_hold(method: str) -> None:
    want, info = GUARANTEES[method], maxpo.METHODS[method]
    assert (info.unbiased, info.centered, info.binary_only) == (want.unbiased, want.centered, want.binary_only)
    g = torch.Generator().manual_seed(17)
    r = (torch.rand(200, 8, generator=g, dtype=torch.float64) < 0.5).double()
    if not want.binary_only:
        r = r + torch.randn(200, 8, generator=g, dtype=torch.float64)
    a = maxpo.advantages(r, 8 if method in ("tang_loo", "grpo_passk") else 3, method)
    sums = a.sum(-1).abs()
    if want.centered:
        assert bool((sums <= 1e-12 * (1 + a.abs().sum(-1))).all()), method
    else:
        assert float(sums.max()) > 1e-3, method


def test_method_flags_table_covers_every_method() -> None:
    assert set(GUARANTEES) == set(maxpo.METHODS)


def _rewards(b: int, binary: bool) -> list[F]:
    if binary:
        base = [F(1), F(0), F(1), F(0), F(0), F(1), F(0)]
    else:
        base = [F(1, 4), F(3, 2), F(-1, 2), F(3, 2), F(0), F(5, 4), F(2)]
    return base[:b]


@pytest.mark.parametrize("method", list(ACCEPTS))
@pytest.mark.parametrize("binary", [False, True], ids=["real", "binary"])
def test_accepted_sizes_give_the_oracle_and_the_others_a_clear_refusal(method: str, binary: bool) -> None:
    row = ACCEPTS[method]
    for b in GRID_B:
        r = _rewards(b, binary)
        t = torch.tensor([float(v) for v in r], dtype=torch.float64)
        for k in GRID_K:
            if accepted(method, b, k, binary):
                got = maxpo.advantages(t, k, method)
                want = [float(v) for v in ref.advantages(r, k, method)]
                np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12, err_msg=f"{method} B={b} k={k}")
                continue
            with pytest.raises(ValueError) as err:
                maxpo.advantages(t, k, method)
            msg = str(err.value)
            if row.binary_only and not binary:  # the first reward, 1/4, is not 0 or 1
                assert msg == f"{method} needs binary rewards (0 or 1), got 0.25 in the group at position 0", msg
                continue
            assert msg.startswith(f"method '{method}' {row.refusal_for(b, k)}"), (b, k, msg)
            assert msg.endswith(f"; every group has B = {b} real samples and k = {k}"), (b, k, msg)


@pytest.mark.parametrize("method", [m for m in ACCEPTS if ACCEPTS[m].refusal])
def test_refusal_in_a_masked_batch_names_the_group(method: str) -> None:
    row = ACCEPTS[method]
    # the smallest k with an accepted and a refused group size; the refused group is group 2
    k, b_ok, b_bad = next((k, bo, bb) for k in GRID_K for bo in GRID_B for bb in GRID_B
                          if row.accepts(bo, k) and not row.accepts(bb, k))
    width = max(b_ok, b_bad)
    r = torch.tensor([[1.0, 0.0, 1.0, 0.0, 1.0, 0.0][:width]] * 3, dtype=torch.float64)
    mask = torch.zeros(3, width, dtype=torch.bool)
    mask[0, :b_ok] = mask[1, :b_ok] = mask[2, :b_bad] = True
    with pytest.raises(ValueError) as err:
        maxpo.advantages(r, k, method, mask=mask)
    assert str(err.value).startswith(f"method '{method}' {row.refusal}"), str(err.value)
    assert str(err.value).endswith(f"; group 2 has B = {b_bad} real samples and k = {k}"), str(err.value)
    ok = maxpo.advantages(r[:2], k, method, mask=mask[:2])
    assert ok.shape == (2, width) and torch.all(ok[~mask[:2]] == 0)


def test_k_may_be_a_numpy_or_zero_dim_integer_tensor_and_nothing_else() -> None:
    r = torch.tensor([0.2, 0.9, 0.4, 0.7], dtype=torch.float64)
    want = maxpo.advantages(r, 2)
    assert torch.equal(maxpo.advantages(r, torch.tensor(2)), want)
    assert torch.equal(maxpo.advantages(r, np.int64(2)), want)
    for bad, shown in [(torch.tensor([2]), "tensor([2]) of type Tensor"),
                       (torch.tensor(2.0), "tensor(2.) of type Tensor"),
                       (torch.tensor(True), "tensor(True) of type Tensor"), (2.0, "2.0 of type float")]:
        with pytest.raises(TypeError) as err:
            maxpo.advantages(r, bad)
        assert str(err.value) == f"k must be an integer, got {shown}"
    with pytest.raises(ValueError) as err:
        maxpo.advantages(r, torch.tensor(0))
    assert str(err.value) == "k must be >= 1, got k = 0"


def test_the_first_bad_value_is_named_and_masked_padding_is_not_checked() -> None:
    r = torch.tensor([[0.1, 0.2, 0.3], [0.1, float("nan"), 0.3], [float("inf"), 0.2, 0.3]], dtype=torch.float64)
    with pytest.raises(ValueError) as err:
        maxpo.advantages(r, 1)
    assert str(err.value) == "rewards contain a non-finite value (nan) in group 1 at position 1"
    c = torch.tensor([[1.0, 0.0, 0.5], [0.0, 1.0, 1.0], [0.0, 0.25, 1.0]])
    with pytest.raises(ValueError) as err:
        maxpo.advantages(c, 1, "chen_passk")
    assert str(err.value) == "chen_passk needs binary rewards (0 or 1), got 0.5 in group 0 at position 2"
    pad = torch.tensor([[True, True, False], [True, True, True], [True, False, True]])
    got = maxpo.advantages(c, 1, "chen_passk", mask=pad)  # the 0.5 and 0.25 are padding
    assert got[0, 2] == 0 and got[2, 1] == 0 and torch.isfinite(got).all()
    assert torch.equal(maxpo.passk_estimate(c, 1, mask=pad), torch.tensor([0.5, 2 / 3, 0.5]))


def test_unusable_arrays_are_refused_by_name() -> None:
    with pytest.raises(TypeError) as err:
        maxpo.advantages(np.array([1 + 1j, 2.0]), 1)
    assert str(err.value) == "rewards must be real, got complex dtype complex128"
    with pytest.raises(TypeError) as err:
        maxpo.advantages(torch.tensor([1, 2, 3], dtype=torch.uint16), 1)
    assert str(err.value) == "rewards must be numeric, got dtype torch.uint16"
    with pytest.raises(ValueError) as err:
        maxpo.advantages([[0.1, 0.2], [0.3, 0.4]], 1, mask=[[True, False], [True]])
    assert str(err.value).startswith("mask could not be read as an array: ")


def test_mask_as_a_list_or_numpy_array_works_like_a_tensor() -> None:
    r = torch.tensor([[0.2, 0.9, 0.4, 7.0], [0.1, 0.3, 0.8, 0.6]], dtype=torch.float64)
    m = [[True, True, True, False], [True, True, True, True]]
    want = maxpo.advantages(r, 2, mask=torch.tensor(m))
    assert want[0, 3] == 0
    assert torch.equal(maxpo.advantages(r, 2, mask=m), want)
    assert torch.equal(maxpo.advantages(r, 2, mask=np.array(m)), want)
    with pytest.raises(ValueError) as err:
        maxpo.advantages(r, 2, mask=[[1, 1, 1, 0], [1, 1, 1, 1]])
    assert str(err.value) == "mask must be a boolean tensor (True = real sample), got dtype torch.int64"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_rewards_with_a_cpu_mask() -> None:
    r = torch.tensor([[0.2, 0.9, 0.4, 7.0]], dtype=torch.float64)
    m = torch.tensor([[True, True, True, False]])
    got = maxpo.advantages(r.cuda(), 2, mask=m)
    assert got.device.type == "cuda" and torch.equal(got.cpu(), maxpo.advantages(r, 2, mask=m))


def test_estimates_refuse_k_above_b_with_the_reason() -> None:
    for fn, name in [(maxpo.maxk_estimate, "maxk_estimate"), (maxpo.passk_estimate, "passk_estimate")]:
        with pytest.raises(ValueError) as err:
            fn(torch.tensor([[1.0, 0.0, 1.0]]), 4)
        assert str(err.value) == (
            f"method '{name}' needs k <= B samples per group (no unbiased max@k or pass@k "
            "estimate exists from fewer than k samples); every group has B = 3 real samples and k = 4")
        assert fn(torch.tensor([[1.0, 0.0, 1.0]]), 3).item() == 1.0


# --------------------------------------------------------------------------- dtypes, bit for bit
def test_other_floating_dtypes_are_refused_by_name() -> None:
    x = torch.tensor([[0.5, 1.0, 0.25]]).to(torch.float8_e4m3fn)  # no sort or sum for it on CPU
    for call in (lambda: maxpo.advantages(x, 1), lambda: maxpo.advantages(x, 1, "grpo"),
                 lambda: maxpo.maxk_estimate(x, 1)):
        with pytest.raises(TypeError) as err:
            call()
        assert str(err.value) == ("rewards have dtype torch.float8_e4m3fn; use float16, bfloat16, float32 or float64 "
                                  "(or integers, bool)")



def _dtype_batch(method: str, g: torch.Generator) -> torch.Tensor:
    if ACCEPTS[method].binary_only:
        return (torch.rand(40, 12, generator=g, dtype=torch.float64) < 0.4).double()
    levels = torch.tensor([-1.7, -0.3, 0.1, 0.45, 0.9, 1.3, 2.6], dtype=torch.float64)
    ties = levels[torch.randint(0, len(levels), (20, 12), generator=g)]
    spread = torch.randn(20, 12, generator=g, dtype=torch.float64)
    return torch.cat([ties, spread])  # rows with many ties, rows with none


@pytest.mark.parametrize("dtype", LOW_PRECISION, ids=str)
@pytest.mark.parametrize("method", list(ACCEPTS))
def test_low_precision_is_the_float64_result_rounded_once(method: str, dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(11)
    x = _dtype_batch(method, g).to(dtype)  # representable in dtype, so x.double() is the same rewards
    for k in [k for k in (1, 3, 11, 12) if accepted(method, 12, k, True)]:
        got = maxpo.advantages(x, k, method)
        want = maxpo.advantages(x.double(), k, method).to(dtype)
        assert got.dtype == dtype
        assert torch.equal(got, want), f"{method} k={k}: max diff {(got.double() - want.double()).abs().max()}"


@pytest.mark.parametrize("dtype", LOW_PRECISION, ids=str)
def test_low_precision_masked_and_estimates_are_rounded_once(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(12)
    x = torch.randn(30, 9, generator=g, dtype=torch.float64).to(dtype)
    mask = torch.rand(30, 9, generator=g) < 0.8
    mask[:, :3] = True
    for method in ["maxpo", "pkpo_loo", "grpo", "rloo"]:
        got = maxpo.advantages(x, 2, method, mask=mask)
        assert torch.equal(got, maxpo.advantages(x.double(), 2, method, mask=mask).to(dtype)), method
    assert torch.equal(maxpo.maxk_estimate(x, 3, mask=mask), maxpo.maxk_estimate(x.double(), 3, mask=mask).to(dtype))
    c = (x > 0).to(dtype)
    assert torch.equal(maxpo.passk_estimate(c, 3), maxpo.passk_estimate(c.double(), 3).to(dtype))


# --------------------------------------------------------------------------- ties, float64
def _tie_batch(binary: bool) -> torch.Tensor:
    g = torch.Generator().manual_seed(13)
    if binary:
        return (torch.rand(300, 40, generator=g, dtype=torch.float64) < 0.5).double()
    # values whose float64 sums round differently depending on the order they are added in
    levels = torch.tensor([0.1, 1 / 3, 0.7, 2 / 3 + 1e-3, np.pi / 10, 1e3 + 1 / 7, -2 / 7], dtype=torch.float64)
    return levels[torch.randint(0, len(levels), (300, 40), generator=g)]


def _assert_ties_identical(r: torch.Tensor, a: torch.Tensor, what: str) -> None:
    rs, order = torch.sort(r, dim=-1, stable=True)
    a_s = a.gather(-1, order)
    same = rs[:, 1:] == rs[:, :-1]
    assert bool(same.any())
    left, right = a_s[:, :-1][same], a_s[:, 1:][same]
    assert torch.equal(left, right), f"{what}: {int((left != right).sum())} tied pairs differ"


@pytest.mark.parametrize("method", list(ACCEPTS))
def test_tied_rewards_get_identical_advantages_in_float64(method: str) -> None:
    binary = ACCEPTS[method].binary_only
    r = _tie_batch(binary)
    ks = [40] if method == "tang_loo" else [k for k in (1, 2, 5, 17, 39) if accepted(method, 40, k, binary)]
    for k in ks:
        _assert_ties_identical(r, maxpo.advantages(r, k, method), f"{method} k={k}")
        perm = torch.randperm(40, generator=torch.Generator().manual_seed(k))
        permuted = maxpo.advantages(r[:, perm], k, method)
        if method in ("grpo", "dr_grpo", "rloo"):  # a mean: its rounding depends on the summation order
            torch.testing.assert_close(permuted, maxpo.advantages(r, k, method)[:, perm], rtol=0, atol=1e-12)
        else:  # computed from the sorted rewards: the same bits whatever the order of the samples
            assert torch.equal(permuted, maxpo.advantages(r, k, method)[:, perm]), method


# --------------------------------------------------------------------------- signs under rounding
def test_pkpo_loo1_is_never_negative_even_where_rounding_would_make_it() -> None:
    # A_(i) = sum_{j<i} C(j-1,k-2)/C(B,k) (r_(i) - r_(j)) >= 0. Computed as a difference of two large
    # sums it can round below 0 when many rewards are nearly equal and large (here within a few ulps
    # of 1e6, above k - 2 zeros): the method promises "never negative", so those must come out as 0.
    g = torch.Generator().manual_seed(16)
    for k in (3, 5, 8):
        low = torch.zeros(100, k - 2, dtype=torch.float64)
        high = 1e6 + torch.randint(0, 6, (100, 24 - (k - 2)), generator=g).double() * 2.0 ** -32
        r = torch.cat([low, high], -1)
        a = maxpo.advantages(r, k, "pkpo_loo1")
        assert bool((a >= 0).all()), (k, a.min().item())
        if k == 3:  # and it stays the exact value to rounding (1e-14 of the rewards' size)
            exact = [float(v) for v in ref.advantages([F(float(v)) for v in r[0]], k, "pkpo_loo1")]
            np.testing.assert_allclose(a[0].numpy(), exact, rtol=0, atol=1e-8)


# --------------------------------------------------------------------------- the pairwise chunks
def _count_blocks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sizes: list[int] = []
    block = est._maxpo_pairwise_block

    def counted(x: torch.Tensor, k: int) -> torch.Tensor:
        sizes.append(x.shape[0])
        return block(x, k)

    monkeypatch.setattr(est, "_maxpo_pairwise_block", counted)
    return sizes


@pytest.mark.parametrize("rows_per_chunk", [1, 2, 3])
def test_pairwise_chunks_match_the_exact_oracle(monkeypatch: pytest.MonkeyPatch, rows_per_chunk: int) -> None:
    rng = random.Random(rows_per_chunk)
    b = 5
    groups = [[F(rng.randint(-3, 3), 4) for _ in range(b)] for _ in range(7)]
    t = torch.tensor([[float(v) for v in row] for row in groups], dtype=torch.float64)
    monkeypatch.setattr(est, "_PAIRWISE_CHUNK", rows_per_chunk * b * b)
    sizes = _count_blocks(monkeypatch)
    for k in range(1, b):
        sizes.clear()
        got = maxpo.advantages(t, k, "maxpo_pairwise")
        assert sizes == [rows_per_chunk] * (7 // rows_per_chunk) + ([7 % rows_per_chunk] if 7 % rows_per_chunk else [])
        for g, row in enumerate(groups):
            want = [float(v) for v in ref.advantages(row, k, "maxpo_pairwise")]
            np.testing.assert_allclose(got[g].numpy(), want, rtol=0, atol=1e-14, err_msg=f"k={k} group {g}")


def test_pairwise_group_larger_than_a_chunk_goes_one_group_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    b = 5
    t = torch.tensor([[0.5, -1.0, 2.0, 0.5, 1.5], [1.0, 1.0, 0.0, -0.5, 3.0], [0.0, 0.25, 0.5, 0.75, 1.0]],
                     dtype=torch.float64)
    monkeypatch.setattr(est, "_PAIRWISE_CHUNK", b * b - 1)  # not even one group fits: still one per block
    sizes = _count_blocks(monkeypatch)
    got = maxpo.advantages(t, 2, "maxpo_pairwise")
    assert sizes == [1, 1, 1]
    for g in range(3):
        want = [float(v) for v in ref.advantages([F(float(v)) for v in t[g]], 2, "maxpo_pairwise")]
        np.testing.assert_allclose(got[g].numpy(), want, rtol=0, atol=1e-14)


def test_pairwise_chunks_match_the_closed_form_at_larger_b(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(14)
    b, k = 33, 6
    groups = [[F(rng.randint(-40, 40), 8) for _ in range(b)] for _ in range(10)]  # ties and exact floats
    t = torch.tensor([[float(v) for v in row] for row in groups], dtype=torch.float64)
    whole = maxpo.advantages(t, k, "maxpo_pairwise")
    monkeypatch.setattr(est, "_PAIRWISE_CHUNK", 4 * b * b)  # 10 groups in chunks of 4, 4, 2
    sizes = _count_blocks(monkeypatch)
    got = maxpo.advantages(t, k, "maxpo_pairwise")
    assert sizes == [4, 4, 2]
    assert torch.equal(got, whole)  # the groups are independent: chunking changes no bit
    for g, row in enumerate(groups):
        want = [float(v) for v in exact_maxpo_closed_form(row, k)]
        np.testing.assert_allclose(got[g].numpy(), want, rtol=0, atol=1e-13, err_msg=f"group {g}")
        _assert_ties_identical(t[g:g + 1], got[g:g + 1], f"group {g}")


def test_pairwise_default_chunk_is_taken_for_many_large_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    # groups x B^2 > 2^23 with the unpatched constant: 9 groups of B = 1024 go in chunks of 8 and 1
    sizes = _count_blocks(monkeypatch)
    g = torch.Generator().manual_seed(15)
    r = (torch.rand(9, 1024, generator=g, dtype=torch.float64) * 8).round() / 8
    got = maxpo.advantages(r, 7, "maxpo_pairwise")
    assert sizes == [8, 1]
    torch.testing.assert_close(got, maxpo.advantages(r, 7, "maxpo"), rtol=0, atol=1e-12)
    row = [F(float(v)) for v in r[8]]
    want = torch.tensor([float(v) for v in exact_maxpo_closed_form(row, 7)], dtype=torch.float64)
    torch.testing.assert_close(got[8], want, rtol=0, atol=1e-13)


def test_message_table_phrases_are_real_sentences() -> None:
    # guard against a row whose refusal phrase is empty (it would match any message)
    for method, row in ACCEPTS.items():
        refused_somewhere = any(not row.accepts(b, k) for b in GRID_B for k in GRID_K)
        assert bool(row.refusal) == refused_somewhere, method
        assert not re.search(r"[|\\]", row.refusal), method
