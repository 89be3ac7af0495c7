r"""max@K advantages as verl advantage estimators (verl 0.9.x).

Importing this module registers, in verl's advantage-estimator registry
(``verl.trainer.ppo.core_algos.register_adv_est``), one estimator per method of
:data:`maxpo.METHODS`, named ``maxk_<method>`` (``maxk_maxpo``, ``maxk_pkpo_loo1``,
``maxk_grpo``, ...), and ``maxpo`` as a short name for ``maxk_maxpo``. Without
verl installed the import succeeds and registers nothing (:func:`register`
then raises ``ImportError``).

Launch recipe
-------------
verl computes advantages inside its Ray ``TaskRunner`` actor, not in the
launching script, so the registration must run in that process. verl imports
every module listed in ``VERL_USE_EXTERNAL_MODULES`` when it is itself imported,
in every process::

    export VERL_USE_EXTERNAL_MODULES=maxpo.integrations.verl
    python -m verl.trainer.main_ppo \
        algorithm.adv_estimator=maxpo \
        +algorithm.maxk.k=4 \
        actor_rollout_ref.rollout.n=8 \
        actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-sum-norm \
        ...   # model, data, reward as for GRPO

A Ray cluster started by ``main_ppo`` itself inherits the variable. For a
cluster started beforehand (``ray start``, ``ray job submit``) pass it in the
runtime environment as well::

        +ray_kwargs.ray_init.runtime_env.env_vars.VERL_USE_EXTERNAL_MODULES=maxpo.integrations.verl

Configuration (``algorithm.maxk``; the ``+`` is needed because verl's config has
no such key; the trainer hands ``config.algorithm`` to the estimator as it is):

``k`` (required)
    the K of max@K; ``maxpo`` needs ``k <= rollout.n - 1``.
``scale`` (default ``per_sample``)
    ``per_sample``, ``sum`` or a positive number (:mod:`maxpo.integrations.grouping`).
``undersized`` (default ``zero``)
    what a group too small for the method gets: ``zero`` (advantage 0, with a
    warning) or ``raise``.

``algorithm.norm_adv_by_std_in_grpo`` is not used by these estimators (std
normalisation would bias max@K gradients).

What the estimator computes
---------------------------
``fn(token_level_rewards, response_mask, config, index, **ignored)``, called by
``verl.trainer.ppo.ray_trainer.compute_advantage``: the scalar reward of a
response is ``token_level_rewards.sum(-1)`` (verl puts the outcome reward on
the last response token; with ``use_kl_in_reward`` it also holds the KL
penalty, which then becomes part of the reward max@K is taken over). Responses
are grouped by their ``uid`` (``index``, a numpy array of strings, groups in any
order and of any size), advantages are
:func:`maxpo.integrations.grouping.group_advantages`, and both ``advantages``
and ``returns`` are that value broadcast over the response tokens
(``adv[:, None] * response_mask``), in the rewards' dtype.

Supported verl: ``>=0.9,<0.10`` (tested with 0.9.1).
"""
from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import torch

import maxpo
from maxpo.integrations.grouping import Scale, check_options, group_advantages, method_size_problem
from maxpo.integrations.versions import import_supported

__all__ = ["CONFIG_KEY", "ESTIMATORS", "EXTERNAL_MODULES_ENV", "SUPPORTED_VERL", "MaxKOptions",
           "check_verl_version", "launch_overrides", "make_estimator", "read_options", "register"]

#: verl versions this module was written and tested against.
SUPPORTED_VERL = ">=0.9,<0.10"

#: Key of the options section inside verl's ``algorithm`` config.
CONFIG_KEY = "maxk"

#: verl estimator name -> maxpo method.
ESTIMATORS: dict[str, str] = {"maxpo": "maxpo", **{f"maxk_{m}": m for m in maxpo.METHODS}}

_OPTION_KEYS = ("k", "scale", "undersized")

#: Environment that makes every verl process (the Ray TaskRunner included) import this module.
EXTERNAL_MODULES_ENV: dict[str, str] = {"VERL_USE_EXTERNAL_MODULES": __name__}


def launch_overrides(k: int, n: int, method: str = "maxpo", scale: Scale = "per_sample") -> list[str]:
    """The Hydra overrides of ``verl.trainer.main_ppo`` that switch a GRPO run to max@K advantages.

    ``n`` is ``actor_rollout_ref.rollout.n``, the group size B. Besides the
    estimator and ``algorithm.maxk``, it asks for a loss normalised by a constant
    (``seq-mean-token-sum-norm``, no length re-weighting) and no KL inside the
    reward (a KL penalty in the reward would change what max@K maximises; use
    ``actor_rollout_ref.actor.use_kl_loss`` for a KL term).
    """
    k, method, scale = check_options(k, method, scale)
    problem = method_size_problem(method, int(n), k)
    if problem:
        raise ValueError(f"rollout.n={n} is the group size B, and with k={k}: {problem}")
    name = "maxpo" if method == "maxpo" else f"maxk_{method}"
    out = [f"algorithm.adv_estimator={name}", f"+algorithm.{CONFIG_KEY}.k={k}",
           f"actor_rollout_ref.rollout.n={int(n)}",
           "actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-sum-norm",
           "algorithm.use_kl_in_reward=False"]
    if scale != "per_sample":
        out.append(f"+algorithm.{CONFIG_KEY}.scale={scale}")
    return out


@dataclass(frozen=True)
class MaxKOptions:
    """The ``algorithm.maxk`` section, checked: ``k``, ``scale``, ``undersized``."""

    k: int
    scale: Scale = "per_sample"
    undersized: str = "zero"


def _lookup(config: Any, key: str) -> Any:
    if config is None:
        return None
    if isinstance(config, Mapping) or hasattr(config, "get"):
        try:
            return config.get(key)
        except (KeyError, AttributeError):
            return None
    return getattr(config, key, None)


def read_options(config: Any, method: str = "maxpo") -> MaxKOptions:
    """Read and check ``config.maxk`` (verl's ``algorithm`` config: a DictConfig, dict or object).

    Raises:
        ValueError: the section or ``k`` is missing, has unknown keys, or bad values.
    """
    section = _lookup(config, CONFIG_KEY)
    if section is None:
        raise ValueError(
            f"verl's algorithm config has no '{CONFIG_KEY}' section: the max@K estimators need K, "
            f"e.g. +algorithm.{CONFIG_KEY}.k=4 on the command line (optional: +algorithm.{CONFIG_KEY}.scale="
            f"per_sample|sum|<number>, +algorithm.{CONFIG_KEY}.undersized=zero|raise)")
    keys = list(section.keys()) if hasattr(section, "keys") else []
    unknown = [str(key) for key in keys if key not in _OPTION_KEYS]
    if unknown:
        raise ValueError(f"unknown key(s) in algorithm.{CONFIG_KEY}: {', '.join(unknown)}; "
                         f"allowed: {', '.join(_OPTION_KEYS)}")
    k = _lookup(section, "k")
    if k is None:
        raise ValueError(f"algorithm.{CONFIG_KEY}.k is missing: set the K of max@K, e.g. +algorithm.{CONFIG_KEY}.k=4")
    scale = _lookup(section, "scale")
    undersized = _lookup(section, "undersized")
    scale = "per_sample" if scale is None else scale
    undersized = "zero" if undersized is None else undersized
    k, _, scale = check_options(k, method, scale, undersized)
    return MaxKOptions(k=k, scale=scale, undersized=undersized)


@cache
def make_estimator(method: str) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """The verl advantage-estimator function for ``method`` (one object per method, so registering is idempotent)."""
    if method not in maxpo.METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of: {', '.join(maxpo.METHODS)}")

    def estimator(token_level_rewards: torch.Tensor, response_mask: torch.Tensor, config: Any = None,
                  index: np.ndarray | None = None, **_: Any) -> tuple[torch.Tensor, torch.Tensor]:
        options = read_options(config, method)
        if index is None:
            raise ValueError(f"the max@K estimator '{method}' groups responses by prompt and needs the 'uid' "
                             "index from verl (data.non_tensor_batch['uid']); none was passed")
        if token_level_rewards.dim() != 2 or token_level_rewards.shape != response_mask.shape:
            raise ValueError(f"token_level_rewards {tuple(token_level_rewards.shape)} and response_mask "
                             f"{tuple(response_mask.shape)} must both be (batch, response_length)")
        scores = token_level_rewards.sum(dim=-1)
        result = group_advantages(scores, index, options.k, method, scale=options.scale,
                                  undersized=options.undersized)  # type: ignore[arg-type]
        advantages = result.advantages.unsqueeze(-1) * response_mask.to(result.advantages.dtype)
        return advantages, advantages

    estimator.__name__ = estimator.__qualname__ = f"maxk_{method}_advantage"
    estimator.__doc__ = (
        f"verl advantage estimator: '{method}' max@K advantages of the outcome rewards, grouped by uid, "
        f"K and scale from algorithm.{CONFIG_KEY}; returns (advantages, returns), both (batch, response_length).")
    return estimator


def check_verl_version() -> str:
    """Import verl and return its version; raise if it is missing or not supported.

    Raises:
        ImportError: verl (or ``packaging``) is not installed.
        RuntimeError: the installed verl is outside :data:`SUPPORTED_VERL`.
    """
    verl = import_supported(
        "verl", "verl", SUPPORTED_VERL, tested="0.9.1",
        relies_on="This module relies on its advantage-estimator registry and calling convention")
    return verl.__version__


def register() -> list[str]:
    """Register every estimator of :data:`ESTIMATORS` with verl; return their names.

    Idempotent. Raises ``ImportError`` without verl, ``RuntimeError`` for an
    unsupported version, and verl's ``ValueError`` if a name is already taken by
    another function.
    """
    check_verl_version()
    from verl.trainer.ppo import core_algos

    for name, method in ESTIMATORS.items():
        core_algos.register_adv_est(name)(make_estimator(method))
    return list(ESTIMATORS)


if importlib.util.find_spec("verl") is not None:
    register()
