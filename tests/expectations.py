"""Expectations about the estimators written by hand, independently of ``maxpo.estimators``.

* :data:`ACCEPTS`: which group sizes B and which K each method accepts, as a grid typed
  from the methods' definitions (not read from ``METHODS[m].check``), and the words of
  the refusal each method must give. A wrong refusal or a wrong acceptance in the code
  changes what the code does, never what these tests expect.
* :func:`exact_maxpo_closed_form`: the MaxPO closed form in exact rational arithmetic,
  O(B) per group, for groups too large for the brute-force oracle.

Not a test module (no ``test_`` prefix); the estimator tests import it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction as F

#: Rows are B = 1..6, columns K = 1..7; "Y" = accepted, "." = refused.
GRID_B = range(1, 7)
GRID_K = range(1, 8)

_K_LE_B_MINUS_1 = """
.......
Y......
YY.....
YYY....
YYYY...
YYYYY..
"""
_K_LE_B = """
Y......
YY.....
YYY....
YYYY...
YYYYY..
YYYYYY.
"""
_TWO_LE_K_LE_B = """
.......
.Y.....
.YY....
.YYY...
.YYYY..
.YYYYY.
"""
_K_EQ_B = """
Y......
.Y.....
..Y....
...Y...
....Y..
.....Y.
"""
_K_EQ_B_GE_2 = """
.......
.Y.....
..Y....
...Y...
....Y..
.....Y.
"""
_B_GE_2 = """
.......
YYYYYYY
YYYYYYY
YYYYYYY
YYYYYYY
YYYYYYY
"""
_ANY = """
YYYYYYY
YYYYYYY
YYYYYYY
YYYYYYY
YYYYYYY
YYYYYYY
"""


@dataclass(frozen=True)
class Acceptance:
    """Which (B, K) a method accepts, and the phrase its refusal must contain."""

    grid: str
    refusal: str  # the reason, exactly as it must appear after "method '<name>' "
    binary_only: bool = False
    #: the reason when B = 1 is refused for a K the grid's rule would otherwise accept ("" = same as refusal)
    single_sample_refusal: str = ""

    def refusal_for(self, b: int, k: int) -> str:
        """The refusal phrase at (B, K): a size-one group may be refused for its own reason."""
        return self.single_sample_refusal if (b == 1 and k == 1 and self.single_sample_refusal) else self.refusal

    def accepts(self, b: int, k: int) -> bool:
        rows = self.grid.strip().splitlines()
        return rows[b - 1][k - 1] == "Y"


_L2O = ("needs k <= B - 1 in every group: the Leave-Two-Out baseline of sample i is an unbiased "
        "max@k estimate from the other B - 1 samples")

#: Every method of ``maxpo.METHODS`` must have a row (a test checks the key sets agree).
ACCEPTS: dict[str, Acceptance] = {
    "maxpo": Acceptance(_K_LE_B_MINUS_1, _L2O),
    "maxpo_pairwise": Acceptance(_K_LE_B_MINUS_1, _L2O),
    "canonical": Acceptance(_K_LE_B_MINUS_1, "needs k <= B - 1 in every group (V_{-i} is a max@k estimate"),
    "pkpo_s": Acceptance(_K_LE_B, "needs k <= B samples per group (no unbiased max@k estimate exists"),
    "pkpo_loo": Acceptance(_K_LE_B_MINUS_1, "needs k <= B - 1 in every group (its baseline is a max@k estimate"),
    "pkpo_loo1": Acceptance(_TWO_LE_K_LE_B, "needs 2 <= k <= B samples per group (its baseline is a max@(k-1)"),
    "chen_passk": Acceptance(_K_LE_B, "needs k <= B samples per group", binary_only=True),
    "tang_loo": Acceptance(_K_EQ_B, "is defined only for k == B (the group is the K-sample set itself)"),
    "grpo_passk": Acceptance(_K_EQ_B_GE_2, "is defined only for k == B (the group is the K-sample set itself)",
                             single_sample_refusal="needs at least 2 samples per group (verl refuses fewer"),
    "maxrl": Acceptance(_K_LE_B_MINUS_1, "needs 1 <= k <= B - 1 in every group: k is the truncation level T "
                        "of the objective sum_{K<=T} (1/K) pass@K", binary_only=True),
    "grpo": Acceptance(_B_GE_2, "needs at least 2 samples per group (std of one sample)"),
    "dr_grpo": Acceptance(_ANY, ""),
    "rloo": Acceptance(_B_GE_2, "needs at least 2 samples per group (leave-one-out mean)"),
}


@dataclass(frozen=True)
class Guarantees:
    """What a method promises (the book's table): E[g_hat] is a multiple of grad J_K; sum_i A_i = 0."""

    unbiased: bool
    centered: bool
    binary_only: bool


#: Typed from the definitions in MATH.md (chen_passk and grpo divide by a data-dependent std).
GUARANTEES: dict[str, Guarantees] = {
    "maxpo": Guarantees(unbiased=True, centered=True, binary_only=False),
    "maxpo_pairwise": Guarantees(unbiased=True, centered=True, binary_only=False),
    "canonical": Guarantees(unbiased=True, centered=True, binary_only=False),
    "pkpo_s": Guarantees(unbiased=True, centered=False, binary_only=False),
    "pkpo_loo": Guarantees(unbiased=True, centered=False, binary_only=False),
    "pkpo_loo1": Guarantees(unbiased=True, centered=False, binary_only=False),
    "chen_passk": Guarantees(unbiased=False, centered=True, binary_only=True),
    "tang_loo": Guarantees(unbiased=True, centered=False, binary_only=False),
    # Tang et al. divided by the group's std (verl's default): a data-dependent scale, not unbiased
    "grpo_passk": Guarantees(unbiased=False, centered=False, binary_only=False),
    # MaxRL = sum_{K<=T} (1/K) A^MaxPO_K: unbiased for the harmonic pass@K objective, centred
    "maxrl": Guarantees(unbiased=True, centered=True, binary_only=True),
    "grpo": Guarantees(unbiased=False, centered=True, binary_only=False),
    "dr_grpo": Guarantees(unbiased=True, centered=True, binary_only=False),
    "rloo": Guarantees(unbiased=True, centered=True, binary_only=False),
}


def accepted(method: str, b: int, k: int, binary: bool) -> bool:
    """Whether ``method`` must accept a group of ``b`` rewards at ``k`` (per the grid above).

    Outside the grid (B > 6 or K > 7) the grids' patterns continue: they are read by rule.
    """
    row = ACCEPTS[method]
    if row.binary_only and not binary:
        return False
    if b in GRID_B and k in GRID_K:
        return row.accepts(b, k)
    # beyond the typed grid: the same rules, spelled out once more by method family
    rule = {
        _K_LE_B_MINUS_1: k <= b - 1, _K_LE_B: k <= b, _TWO_LE_K_LE_B: 2 <= k <= b,
        _K_EQ_B: k == b, _K_EQ_B_GE_2: k == b >= 2, _B_GE_2: b >= 2, _ANY: True,
    }
    return rule[row.grid]


def exact_maxpo_closed_form(rewards: list[F], k: int) -> list[F]:
    """Independent exact O(B) evaluation of the MaxPO closed form with math.comb and Fractions.

    ``A_i = K/(B-K) (Q_i - mean Q)`` with ``Q_(i) = [C(i-1,K-1) r_(i) + sum_{m>i} C(m-2,K-2) r_(m)] / C(B-1,K-1)``
    in ascending order; ties take the value at the end of their run (Q is symmetric in ties).
    """
    b = len(rewards)
    order = sorted(range(b), key=lambda i: rewards[i])
    xs = [rewards[i] for i in order]
    norm = math.comb(b - 1, k - 1)
    tail = [F(0)] * (b + 1)  # tail[p] = sum_{m >= p} C(m-2, k-2) x_m (1-based m)
    for m in range(b, 0, -1):
        c = math.comb(m - 2, k - 2) if (k >= 2 and m >= 2) else 0
        tail[m - 1] = tail[m] + c * xs[m - 1]
    q = [(math.comb(i - 1, k - 1) * xs[i - 1] + tail[i]) / norm for i in range(1, b + 1)]
    for i in range(b - 2, -1, -1):
        if xs[i] == xs[i + 1]:
            q[i] = q[i + 1]
    mean_q = sum(q, F(0)) / b
    out = [F(0)] * b
    for pos, i in enumerate(order):
        out[i] = F(k, b - k) * (q[pos] - mean_q)
    return out
