r"""The zero-signal zone: when a group ties at the top, some methods return all zeros.

Let ``t`` of the ``B`` rewards of a group tie at the top value :math:`r_{(B)}`.

* **MaxPO** (and its pairwise form, the canonical advantage, Chen et al.'s
  pass@K advantage): :math:`A_i = \tfrac{K}{B-K}(Q_i - \hat\rho)`. When
  :math:`t \ge B-K+1`, at most :math:`K-1` samples lie below the top, so every
  :math:`K`-subset contains a top sample: every subset maximum is the top, hence
  :math:`Q_i = \hat\rho = r_{(B)}` and every advantage is 0. When
  :math:`t \le B-K` some :math:`K`-subset misses the top, so
  :math:`\hat\rho < r_{(B)} = Q_{\text{top}}` and a top sample gets a positive
  advantage. Threshold: :math:`t^\star = B-K+1`.
* **PKPO loo-1** (and Tang et al.'s estimator, loo-1 at :math:`K = B`, with
  verl's ``grpo_passk``, Tang et al.'s divided by the group's standard deviation):
  :math:`A_i` is the mean marginal contribution of sample ``i`` to the best of a
  :math:`K`-subset containing it. It is zero for every ``i`` exactly when every
  :math:`(K-1)`-subset of the other samples already holds a top sample, i.e. when
  fewer than :math:`K-1` samples lie below the top: :math:`t^\star = B-K+2`
  (one more tie than MaxPO needs).
* **Mean-reward methods** (RLOO, Dr. GRPO, GRPO) and **MaxRL** (whose harmonic
  mixture contains the :math:`K = 1` term, RLOO divided by ``B``): zero only when
  every reward is equal, :math:`t^\star = B`.
* **PKPO's signal and its loo baseline** are not centred: in the zone every
  advantage equals the same constant, :math:`\tfrac KB r_{(B)}` (signal) or
  :math:`-\tfrac{K}{B(B-1)} r_{(B)}` (loo). They are all zero only when the group is
  in the zone *and* its top reward is 0 (:mod:`maxpo.theory.silent_groups`), so no
  tie count alone silences them; :func:`zero_signal_ties` returns ``None``.

For pass@K (binary rewards, ``c`` correct answers) the top tie is ``c``, so a group
with ``c >= B - K + 1`` correct answers gives MaxPO no gradient, as does one with
``c = 0``. :func:`no_signal_probability` turns that into the chance that a group
is wasted when each answer is correct with probability ``p``.
"""
from __future__ import annotations

import math

import maxpo

__all__ = ["zero_signal_ties", "informative_counts", "no_signal_probability"]

_CENTRED_MAXK = ("maxpo", "maxpo_pairwise", "canonical", "chen_passk")
_LOO1 = ("pkpo_loo1", "tang_loo", "grpo_passk")
_MEAN_REWARD = ("grpo", "dr_grpo", "rloo", "maxrl")
_NEVER_ZERO = ("pkpo_s", "pkpo_loo")


def _check(method: str, b: int, k: int) -> None:
    if method not in maxpo.METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of: {', '.join(maxpo.METHODS)}")
    if not isinstance(b, int) or not isinstance(k, int) or b < 1 or k < 1:
        raise ValueError(f"need integers B >= 1 and K >= 1, got B={b!r}, K={k!r}")
    why = maxpo.METHODS[method].check(b, k)
    if why is not None:
        raise ValueError(f"{method} at B={b}, K={k}: {why}")


def zero_signal_ties(method: str, b: int, k: int) -> int | None:
    r"""Fewest top ties :math:`t^\star` that force every advantage of ``method`` to 0.

    Whenever at least :math:`t^\star` of the ``b`` rewards equal the group maximum,
    every advantage is exactly 0, whatever the other rewards are; with
    :math:`t^\star - 1` ties some group has a non-zero advantage. ``None`` means
    no tie count alone silences the method (PKPO's signal and loo: only a top reward
    of 0 does, :func:`maxpo.theory.silent_groups.pkpo_silent`).
    MaxPO-like: :math:`B-K+1`; loo-1 and Tang: :math:`B-K+2`; mean-reward
    methods: :math:`B`.
    """
    _check(method, b, k)
    if method in _NEVER_ZERO:
        return None
    if method in _MEAN_REWARD:
        return b
    if method in _LOO1:
        return min(b, b - k + 2)
    if method in _CENTRED_MAXK:
        return b - k + 1
    raise ValueError(f"no zero-signal rule is known for method {method!r}")


def informative_counts(method: str, b: int, k: int) -> range:
    """Numbers ``c`` of correct answers (binary rewards) for which ``method`` gives a gradient.

    ``c = 0`` never does; ``c >= t*`` (:func:`zero_signal_ties`) never does. For a
    method that no tie count silences, every ``c`` from 1 to ``b`` counts.
    """
    t = zero_signal_ties(method, b, k)
    return range(1, b + 1 if t is None else t)


def no_signal_probability(method: str, b: int, k: int, p: float) -> float:
    r"""Chance that a group of ``b`` binary rewards, each correct with probability ``p``, gives 0.

    :math:`1 - \sum_{c \in \text{informative}} \binom{B}{c} p^c (1-p)^{B-c}`; for MaxPO
    that is :math:`P(c = 0) + P(c \ge B-K+1)`.
    """
    if not 0.0 <= p <= 1.0 or math.isnan(p):
        raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
    useful = sum(math.comb(b, c) * p ** c * (1 - p) ** (b - c) for c in informative_counts(method, b, k))
    return max(0.0, 1.0 - useful)
