"""Drop-in use of :func:`maxpo.advantages` inside RL training frameworks.

* :mod:`maxpo.integrations.grouping`: the framework-neutral core. It takes a flat
  batch of rewards with a group label per sample (prompt index, verl ``uid``),
  computes any :data:`maxpo.METHODS` advantage per group, and puts it on a
  documented scale (``scale="per_sample"`` by default).
* :mod:`maxpo.integrations.trl`: ``MaxKGRPOTrainer``, TRL's ``GRPOTrainer`` with
  max@K advantages (TRL 1.16.x).
* :mod:`maxpo.integrations.verl`: every method registered as a verl advantage
  estimator (``maxk_<method>``, plus ``maxpo``), K read from ``algorithm.maxk.k``
  (verl 0.9.x).
* :mod:`maxpo.integrations.evaluation`: unbiased pass@k and max@k evaluation
  metrics with standard errors (verl's validation, TRL's evaluation).
* :mod:`maxpo.integrations.verl_bias`: verl's bootstrap ``best@k`` next to the
  unbiased pass@k on a simulated validation set (calls verl's own function).
* :mod:`maxpo.integrations.demo`: a tiny offline CPU GRPO run used by the book
  and the tests.
* :mod:`maxpo.integrations.pitfalls`: exact computations behind the book's
  warnings (std normalisation on top of MaxPO, loss averaging).
* :mod:`maxpo.integrations.versions`: imports a framework and refuses the
  versions an integration was not written for.

Nothing here imports TRL or verl at import time; each framework is imported
when it is first needed, so ``maxpo`` stays importable without them.
"""
from __future__ import annotations

from maxpo.integrations.grouping import (
    PER_SAMPLE_RULE,
    SCALES,
    GroupedAdvantages,
    batch_maxk_estimate,
    group_advantages,
    group_scale_factors,
)

__all__ = ["PER_SAMPLE_RULE", "SCALES", "GroupedAdvantages", "batch_maxk_estimate", "group_advantages",
           "group_scale_factors"]
