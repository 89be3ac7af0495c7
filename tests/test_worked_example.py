"""The worked-example tables agree with the exact oracles and with the package."""
from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch

import maxpo
from maxpo import reference
from maxpo.theory.worked_example import pairwise_matrix, sample_table, subset_roles, subset_table

R = ["1/10", "3/10", "1/2", "7/10", "9/10"]


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_sample_table_against_reference(k: int) -> None:
    rows = sample_table(R, k)
    assert [row["s"] for row in rows] == reference.signal(R, k)
    assert [row["Q"] for row in rows] == reference.q_values(R, k)
    assert [row["V"] for row in rows] == [reference.leave_one_out_maxk(R, i, k) for i in range(5)]
    assert [row["A"] for row in rows] == reference.advantages(R, k, "maxpo")
    # closed form of the L2O baseline, (K/B) V_{-i}
    assert all(row["b"] == Fraction(k, 5) * row["V"] for row in rows)
    pkg = maxpo.advantages([float(Fraction(v)) for v in R], k)
    assert torch.allclose(pkg, torch.tensor([float(row["A"]) for row in rows], dtype=torch.float64))


def test_by_hand_numbers() -> None:
    # B = 5, K = 2: the ten pairs; the best sample is the max of each of its 4 pairs
    subsets = subset_table(R, 2)
    assert len(subsets) == 10 and subsets[0] == ((0, 1), Fraction(3, 10))
    rows = sample_table(R, 2)
    assert rows[4]["Q"] == Fraction(9, 10) and rows[0]["Q"] == Fraction(3, 5)
    assert sum(row["A"] for row in rows) == 0


@pytest.mark.parametrize("k", [1, 2, 3])
def test_pairwise_matrix(k: int) -> None:
    d = pairwise_matrix(R, k)
    assert all(d[i][j] == -d[j][i] for i in range(5) for j in range(5))
    a = reference.advantages(R, k, "maxpo")
    assert [Fraction(k, 20) * sum(d[i]) for i in range(5)] == a


def test_roles_and_errors() -> None:
    roles = subset_roles(5, 2)
    assert [row.count("signal") for row in roles] == [math.comb(4, 1)] * 5
    assert [row.count("baseline") for row in roles] == [math.comb(4, 2)] * 5
    with pytest.raises(ValueError, match="K <= B - 1"):
        sample_table(R, 5)
    with pytest.raises(ValueError, match="K <= B - 1"):
        subset_roles(3, 3)
