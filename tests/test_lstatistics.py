"""L-statistic objectives as signed mixtures of max@k: exact weights, advantages, precision limits."""
from __future__ import annotations

import itertools
import math
import warnings
from fractions import Fraction as F

import pytest
import torch

import maxpo
from maxpo import lstatistics as ls
from maxpo import reference as ref


@pytest.mark.parametrize("k", [1, 2, 5, 7])
def test_spanning_proof(k):
    assert all(ls.spanning_proof(k).values())


def test_min_weights_are_inclusion_exclusion():
    for k in range(1, 9):
        assert ls.mixture_weights(ls.lstatistic_coefficients("min", k)) == \
            {j: F((-1) ** (j + 1) * math.comb(k, j)) for j in range(1, k + 1)}


def _subset_objective(name: str, s: tuple, m: int | None) -> F:
    """The named objective of one subset, computed directly from its sorted values (no coefficients)."""
    v = sorted(s)
    n = len(v)
    if name == "max":
        return v[-1]
    if name == "min":
        return v[0]
    if name == "mean":
        return sum(v, F(0)) / n
    if name == "median":
        return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
    if name == "top_mean":
        return sum(v[n - m:], F(0)) / m
    if name == "bottom_mean":
        return sum(v[:m], F(0)) / m
    assert name == "trimmed_mean"
    return sum(v[m:n - m], F(0)) / (n - 2 * m)


_CASES = [("min", 4, None), ("median", 2, None), ("median", 3, None), ("median", 4, None), ("median", 5, None),
          ("median", 6, None), ("top_mean", 2, 1), ("top_mean", 4, 2), ("top_mean", 5, 3), ("bottom_mean", 2, 1),
          ("bottom_mean", 3, 2), ("bottom_mean", 4, 3), ("trimmed_mean", 5, 1), ("trimmed_mean", 6, 2),
          ("trimmed_mean", 4, 1), ("trimmed_mean", 3, 0), ("mean", 2, None), ("mean", 3, None),
          ("max", 2, None), ("max", 3, None), ("min", 2, None)]


@pytest.mark.parametrize("name, k, m", _CASES)
def test_mixture_of_ustats_equals_the_lstatistic_by_subsets(name, k, m):
    # sum_k w_k (max@k U-statistic) = mean over all K-subsets of the objective of the subset, exactly;
    # the direct side takes the median / trimmed / top-m / bottom-m mean of each subset by hand
    r = [F(3, 7), F(-1, 2), F(2), F(1, 3), F(1, 3), F(5, 4), F(0), F(-7, 3)]
    w = ls.mixture_weights(ls.lstatistic_coefficients(name, k, m))
    subsets = list(itertools.combinations(r, k))
    direct = sum((_subset_objective(name, s, m) for s in subsets), F(0)) / len(subsets)
    assert ref.mixture_ustat(r, w) == direct


@pytest.mark.parametrize("name, k, m", _CASES)
def test_mean_type_coefficients_sum_to_one(name, k, m):
    # every objective here is a mean of order statistics: a constant reward c has objective c
    a = ls.lstatistic_coefficients(name, k, m)
    assert sum(a) == 1
    assert all(x >= 0 for x in a)
    assert sum(ls.mixture_weights(a).values()) == 1  # J_k of a constant is the constant


def test_named_weights_give_exact_advantages_batched_with_masks():
    r = torch.tensor([[0.1, 0.7, 0.7, 0.2, 0.9, 0.4], [0.5, 0.3, 0.8, 0.1, 0.0, 0.0]], dtype=torch.float64)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    w = ls.lstatistic_weights("median", 3)
    got = maxpo.advantages(r, w, mask=mask)
    exact_w = ls.mixture_weights(ls.lstatistic_coefficients("median", 3))
    for g in range(2):
        real = [F(float(v)) for v, keep in zip(r[g], mask[g]) if keep]
        want = ref.mixture_advantages(real, exact_w)
        assert want == ls.exact_mixture_advantages(real, exact_w)
        assert [float(v) for v in got[g][mask[g]]] == pytest.approx([float(v) for v in want], abs=1e-14)


def test_precision_thresholds_refuse_and_warn():
    with pytest.raises(ValueError, match="L1 norm"):
        ls.lstatistic_weights("min", 30)
    with pytest.warns(RuntimeWarning, match="relative precision"):
        ls.lstatistic_weights("min", 16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ls.lstatistic_weights("top_mean", 30, 3)  # positive-ish weights: no precision issue
        ls.lstatistic_weights("min", 10)


def test_precision_loss_is_measured_against_fractions():
    small = ls.precision_loss("min", 4, 8, groups=2)
    large = ls.precision_loss("min", 20, 24, groups=1)
    assert small["relative_error"] < 1e-13
    assert large["relative_error"] > 1e3 * small["relative_error"]
    assert large["relative_error"] < 3e-14 * large["weight_norm"]


@pytest.mark.parametrize("args, match", [(("median", 0), "K must be"), (("top_mean", 4), "needs an integer m"),
                                         (("top_mean", 4, 5), "1 <= m <= K"), (("trimmed_mean", 4, 2), "2 m < K"),
                                         (("mode", 4), "unknown L-statistic")])
def test_bad_lstatistics(args, match):
    with pytest.raises(ValueError, match=match):
        ls.lstatistic_weights(*args)


def test_precision_thresholds_at_their_edges():
    # min of K has weights (-1)^(k+1) C(K, k): L1 norm 2^K - 1 (computed here, not read from the module)
    assert sum(abs(v) for v in ls.mixture_weights(ls.lstatistic_coefficients("min", 14)).values()) == 2 ** 14 - 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ls.lstatistic_weights("min", 13)  # 8191 < 1e4: silent
    with pytest.warns(RuntimeWarning, match=r"1\.64e\+04"):
        ls.lstatistic_weights("min", 14)  # 16383 > 1e4
    with pytest.warns(RuntimeWarning):
        assert ls.lstatistic_weights("min", 23)[23] == 1.0  # 8388607 < 1e7: warned, not refused
    with pytest.raises(ValueError, match="1.68e\\+07"):
        ls.lstatistic_weights("min", 24)  # 16777215 > 1e7


@pytest.mark.parametrize("args, match", [(("median", True), "K must be"), (("median", 2.0), "K must be"),
                                         (("median", -1), "K must be"), (("top_mean", 4, True), "integer m"),
                                         (("top_mean", 4, 1.0), "integer m"), (("top_mean", 4, 0), "1 <= m <= K"),
                                         (("bottom_mean", 4, 0), "1 <= m <= K"), (("bottom_mean", 3, 4), "1 <= m"),
                                         (("trimmed_mean", 4, -1), "2 m < K"), (("trimmed_mean", 5, 3), "2 m < K"),
                                         (("trimmed_mean", 4, None), "integer m")])
def test_bad_lstatistic_arguments_name_the_problem(args, match):
    with pytest.raises(ValueError, match=match):
        ls.lstatistic_coefficients(*args)


def test_edge_arguments_are_accepted():
    assert ls.lstatistic_coefficients("top_mean", 3, 3) == [F(1, 3)] * 3
    assert ls.lstatistic_coefficients("bottom_mean", 3, 1) == [F(1), F(0), F(0)]
    assert ls.lstatistic_coefficients("trimmed_mean", 5, 2) == [F(0), F(0), F(1), F(0), F(0)]
    assert ls.lstatistic_coefficients("median", 1) == [F(1)]
    assert ls.lstatistic_coefficients("max", 1, m=3) == [F(1)]  # m is ignored where no m is needed


def test_mixture_weights_of_nothing_is_refused():
    with pytest.raises(ValueError, match="at least one coefficient"):
        ls.mixture_weights([])
    assert ls.mixture_weights(["1/2", 0, "1/2"]) == {1: F(3, 2), 2: F(-3, 2), 3: F(1)}  # by hand: (J1 ... J3)


def test_spanning_matrix_entries_by_hand():
    # K = 3: J_1 = (x1 + x2 + x3)/3, J_2 = (x2 + 2 x3)/3, J_3 = x3
    assert ls.spanning_matrix(3).tolist() == [[F(1, 3), F(1, 3), F(1, 3)], [0, F(1, 3), F(2, 3)], [0, 0, 1]]


# ----------------------------------------------------------------------------- the checks can fail
@pytest.mark.parametrize("k", [3, 4])
@pytest.mark.parametrize("row", ["first", "last"])
def test_spanning_proof_rejects_a_wrong_row(k, row, monkeypatch):
    """A proof that cannot fail proves nothing: one wrong entry in the first or the last row of M
    (still upper triangular, diagonal unchanged) must make rows_are_maxk False, and only it."""
    right = ls.spanning_matrix

    def wrong(k_max):
        m = right(k_max).copy()
        r = 0 if row == "first" else k_max - 1
        m[r, k_max - 1] += F(1, 7)  # the last column: upper triangular in every row
        return m

    monkeypatch.setattr(ls, "spanning_matrix", wrong)
    proof = ls.spanning_proof(k)
    assert proof == {"triangular": True, "diagonal_nonzero": True, "invertible": True, "rows_are_maxk": False}


def test_spanning_proof_rejects_a_zero_on_the_diagonal(monkeypatch):
    # a singular triangular matrix: the diagonal check and the determinant must both see it
    right = ls.spanning_matrix

    def singular(k_max):
        m = right(k_max).copy()
        m[1, 1] = 0
        return m

    monkeypatch.setattr(ls, "spanning_matrix", singular)
    proof = ls.spanning_proof(3)
    assert proof["triangular"] and not proof["diagonal_nonzero"] and not proof["invertible"]
    assert not proof["rows_are_maxk"]


def test_a_norm_equal_to_a_threshold_is_not_above_it(monkeypatch):
    # the thresholds bound the norm from above ("exceeds"): a norm equal to one is accepted silently.
    # The min of K has the norm 2^K - 1 (inclusion-exclusion, by hand).
    monkeypatch.setattr(ls, "MAX_WEIGHT_NORM", float(2 ** 14 - 1))
    with pytest.warns(RuntimeWarning):  # above the warning threshold, but equal to the refusal one
        ls.lstatistic_weights("min", 14)
    monkeypatch.setattr(ls, "WARN_WEIGHT_NORM", float(2 ** 13 - 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ls.lstatistic_weights("min", 13)


def test_the_precision_warning_points_at_the_caller():
    with pytest.warns(RuntimeWarning, match="relative precision") as record:
        ls.lstatistic_weights("min", 15)
    assert [w.filename for w in record] == [__file__]


def test_precision_loss_defaults_by_hand():
    """Four groups of seed 0 (the defaults), the worst error relative to each group's largest exact
    advantage: recomputed here with the min's weights by hand and the brute-force oracle's advantages."""
    k, b = 5, 8
    weights = {j: F((-1) ** (j + 1) * math.comb(k, j)) for j in range(1, k + 1)}
    r = torch.rand(4, b, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    got = maxpo.advantages(r, {j: float(v) for j, v in weights.items()})
    per_group = []
    for g in range(4):
        exact = ref.mixture_advantages([F(float(v)) for v in r[g]], weights)
        err = max(abs(F(float(a)) - e) for a, e in zip(got[g].tolist(), exact))
        per_group.append(float(err / max(abs(e) for e in exact)))
    out = ls.precision_loss("min", k, b)
    assert out["weight_norm"] == 2 ** k - 1
    assert out["relative_error"] == pytest.approx(max(per_group), rel=1e-9, abs=0)  # errors are ~1e-14
    assert out["relative_error"] > 0
