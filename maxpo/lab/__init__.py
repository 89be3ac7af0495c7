"""The capstone lab: RL fine-tuning of a small language model with a switchable advantage estimator.

A verifiable task (:mod:`~maxpo.lab.task`, countdown puzzles), a tiny GPT trained
from scratch or a local Hugging Face model (:mod:`~maxpo.lab.model`,
:mod:`~maxpo.lab.hf`), a cached supervised warm start
(:mod:`~maxpo.lab.warmstart`), KV-cached sampling (:mod:`~maxpo.lab.sampling`),
the RL loop (:mod:`~maxpo.lab.train`, :mod:`~maxpo.lab.loss`), held-out
evaluation (:mod:`~maxpo.lab.evaluate`), DDP (:mod:`~maxpo.lab.distributed`),
method comparisons (:mod:`~maxpo.lab.compare`) and the command line
(``python -m maxpo.lab --help``).

Run one configuration with :func:`maxpo.lab.train.train` and several with
:func:`maxpo.lab.compare.compare` (the submodules share those functions' names,
so they are not re-exported here).
"""
from __future__ import annotations

from maxpo.lab.config import PRESETS, EvalConfig, LabConfig, ModelSpec, RLConfig, WarmStartConfig, preset
from maxpo.lab.task import DIFFICULTIES, Puzzle, TaskConfig, score

__all__ = [
    "PRESETS",
    "DIFFICULTIES",
    "EvalConfig",
    "LabConfig",
    "ModelSpec",
    "Puzzle",
    "RLConfig",
    "TaskConfig",
    "WarmStartConfig",
    "preset",
    "score",
]
