r"""max@K advantages as verl advantage estimators (verl 0.9.x).

Importing this module registers, in verl's advantage-estimator registry
(``verl.trainer.ppo.core_algos.register_adv_est``), one estimator per method of
:data:`maxpo.METHODS` (methods added to the table appear automatically), named
``maxk_<method>`` (``maxk_maxpo``, ``maxk_pkpo_loo1``, ``maxk_grpo``, ...), and
``maxpo`` as a short name for ``maxk_maxpo``. Without verl installed the import
succeeds and registers nothing (:func:`register` then raises ``ImportError``).

Registration in every verl process
----------------------------------
verl computes advantages inside its Ray ``TaskRunner`` actor, not in the
launching script, so the registration must run in that process. Two ways:

* **Entry point (automatic).** ``pip install maxpo`` (or ``pip install -e .``)
  declares this module in the entry-point group ``verl.plugins``
  (``pyproject.toml``: ``[project.entry-points."verl.plugins"] maxpo =
  "maxpo.integrations.verl"``). verl 0.9.1 loads that group whenever it is
  imported, in every process, unless ``VERL_USE_EXTERNAL_PLUGINS=none`` (a
  comma-separated list of names loads only those, e.g. ``maxpo``). verl logs a
  plugin that fails to *import* only at debug level: if ``adv_estimator=maxpo``
  is then unknown, run ``python -m maxpo.integrations.verl --check`` (it says
  what is registered, or why not), or use the variable below, which shows the
  import error. A registration that fails after the import is a warning.
* **Environment variable.** ``VERL_USE_EXTERNAL_MODULES=maxpo.integrations.verl``
  makes verl import the module when verl is imported, in every process (also
  for a ``maxpo`` that is only on ``PYTHONPATH``, not installed). A Ray cluster
  started by ``main_ppo`` inherits it; for a cluster started beforehand pass
  ``++ray_kwargs.ray_init.runtime_env.env_vars.VERL_USE_EXTERNAL_MODULES=maxpo.integrations.verl``.

Launch recipe (:func:`launch_overrides` writes the overrides)::

    python -m verl.trainer.main_ppo \
        algorithm.adv_estimator=maxpo +algorithm.maxk.k=4 \
        actor_rollout_ref.rollout.n=8 \
        actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-sum-norm \
        actor_rollout_ref.actor.loss_scale_factor=1024 \
        algorithm.use_kl_in_reward=False algorithm.norm_adv_by_std_in_grpo=False \
        ...   # model, data, reward as for GRPO

A plain override fails on a key verl's configuration lacks, so a renamed key
in a later verl is an error, not a dead setting; ``+`` adds the new
``algorithm.maxk`` section and fails if it is already there.

The loss normaliser: ``seq-mean-token-sum-norm`` sums each response's token
losses and divides by the number of responses and by
``loss_scale_factor``. Left at ``null``, verl 0.9.1 uses the padded width of
each micro-batch instead, which changes from one micro-batch to the next (the
same response weighs differently depending on its neighbours); a constant
(the maximum response length, ``data.max_response_length``, as in Dr. GRPO)
keeps the gradient proportional to the advantages.

Configuration (``algorithm.maxk``; the trainer hands ``config.algorithm`` to
the estimator as it is):

``k`` (required)
    the K of max@K; ``maxpo`` needs ``k <= rollout.n - 1``.
``scale`` (default ``per_sample``)
    ``per_sample``, ``sum`` or a positive number (:mod:`maxpo.integrations.grouping`).
``undersized`` (default ``zero``)
    what a group too small for the method gets: ``zero`` (advantage 0, with a
    warning) or ``raise``.

Switches that change the objective, warned about when set (:func:`objective_warnings`):
``algorithm.use_kl_in_reward=True`` puts the KL penalty into the token rewards,
so max@K would be taken over the penalised reward (use
``actor_rollout_ref.actor.use_kl_loss`` instead); ``algorithm.norm_adv_by_std_in_grpo=True``
(verl's default) asks for std-normalised advantages, which these estimators
never compute (it would re-weight prompts and bias the max@K gradient): the
switch is ignored, and the warning says so.

Groups with no max@K signal
---------------------------
A group whose max@K advantages are all zero (for pass@K under ``maxpo``: no
correct answer, or more than ``B - K`` of them) adds nothing to the policy
gradient; DAPO's ``algorithm.filter_groups`` drops only groups of equal rewards
(zero std), a subset of these. :func:`drop_no_signal_groups` removes every
group without signal from a ``DataProto`` (rows grouped by ``uid``), and
:func:`no_signal_uids` lists them, for a trainer or recipe that filters its
batches before the update. Keeping them is also correct: with a constant
normaliser their zero advantages leave the gradient unbiased.

What the estimator computes
---------------------------
``fn(token_level_rewards, response_mask, config, index, **ignored)``, called by
``verl.trainer.ppo.ray_trainer.compute_advantage``: the scalar reward of a
response is ``token_level_rewards.sum(-1)`` (verl puts the outcome reward on
the last response token). Responses are grouped by their ``uid`` (``index``, a
numpy array of strings, groups in any order and of any size), advantages are
:func:`maxpo.integrations.grouping.group_advantages`, and both ``advantages``
and ``returns`` are that value broadcast over the response tokens
(``adv[:, None] * response_mask``), in the rewards' dtype.

Supported verl: ``>=0.9,<0.10`` (tested with 0.9.1).
"""
from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import sys
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import torch

import maxpo
from maxpo.integrations.evaluation import at_k_metrics, check_ks, is_binary
from maxpo.integrations.grouping import Scale, check_options, group_advantages, method_size_problem
from maxpo.integrations.versions import import_supported

__all__ = ["CONFIG_KEY", "ENTRY_POINT", "ESTIMATORS", "EXTERNAL_MODULES_ENV", "SUPPORTED_VERL", "MaxKOptions",
           "check_verl_version", "drop_no_signal_groups", "held_by_others", "launch_overrides", "make_estimator",
           "no_signal_uids", "objective_warnings", "read_options", "register", "registered"]

#: verl versions this module was written and tested against.
SUPPORTED_VERL = ">=0.9,<0.10"

#: Key of the options section inside verl's ``algorithm`` config.
CONFIG_KEY = "maxk"

#: verl estimator name -> maxpo method.
ESTIMATORS: dict[str, str] = {"maxpo": "maxpo", **{f"maxk_{m}": m for m in maxpo.METHODS}}

_OPTION_KEYS = ("k", "scale", "undersized", "val_k")

#: Environment that makes every verl process (the Ray TaskRunner included) import this module.
EXTERNAL_MODULES_ENV: dict[str, str] = {"VERL_USE_EXTERNAL_MODULES": __name__}

#: (group, name, value) of the entry point that ``pyproject.toml`` declares; verl loads the group on import.
ENTRY_POINT: tuple[str, str, str] = ("verl.plugins", "maxpo", __name__)


def launch_overrides(k: int, n: int, *, loss_scale_factor: int, method: str = "maxpo",
                     scale: Scale = "per_sample") -> list[str]:
    """The Hydra overrides of ``verl.trainer.main_ppo`` that switch a GRPO run to max@K advantages.

    ``n`` is ``actor_rollout_ref.rollout.n``, the group size B; ``loss_scale_factor``
    the constant that ``seq-mean-token-sum-norm`` divides by (use
    ``data.max_response_length``). Besides the estimator and ``algorithm.maxk``,
    the overrides ask for that constant normaliser (no length re-weighting, no
    dependence on the micro-batch's padding), no KL inside the reward (it would
    change what max@K maximises; use ``actor_rollout_ref.actor.use_kl_loss``) and
    ``norm_adv_by_std_in_grpo=False`` (these estimators never normalise by a std).
    The five keys verl's ``ppo_trainer.yaml`` defines are plain overrides, which
    fail if a later verl renames or drops one (``++`` would silently add a dead
    key); the new ``algorithm.maxk`` section uses ``+``, which fails if the
    configuration already has it (remove it from the user config instead).
    """
    k, method, scale = check_options(k, method, scale)
    problem = method_size_problem(method, int(n), k)
    if problem:
        raise ValueError(f"rollout.n={n} is the group size B, and with k={k}: {problem}")
    if isinstance(loss_scale_factor, bool) or not isinstance(loss_scale_factor, int) or loss_scale_factor < 1:
        raise ValueError(f"loss_scale_factor must be a positive integer (the maximum response length), "
                         f"got {loss_scale_factor!r}")
    name = "maxpo" if method == "maxpo" else f"maxk_{method}"
    out = [f"algorithm.adv_estimator={name}", f"+algorithm.{CONFIG_KEY}.k={k}",
           f"actor_rollout_ref.rollout.n={int(n)}",
           "actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-sum-norm",
           f"actor_rollout_ref.actor.loss_scale_factor={loss_scale_factor}",
           "algorithm.use_kl_in_reward=False", "algorithm.norm_adv_by_std_in_grpo=False"]
    if scale != "per_sample":
        out.append(f"+algorithm.{CONFIG_KEY}.scale={scale}")
    return out


def objective_warnings(config: Any, method: str = "maxpo") -> list[str]:
    """Messages for the switches of verl's ``algorithm`` config that change (or would change) the objective.

    ``use_kl_in_reward=True``: the KL penalty is inside the rewards max@K is taken
    over. ``norm_adv_by_std_in_grpo=True``: a std normalisation that these
    estimators ignore. Empty when neither is set.
    """
    out = []
    if bool(_lookup(config, "use_kl_in_reward")):
        out.append(f"algorithm.use_kl_in_reward=True: the token rewards include the KL penalty, so the max@K "
                   f"estimator '{method}' maximises max@K of the penalised reward; set it False and use "
                   "actor_rollout_ref.actor.use_kl_loss=True for a KL term")
    if bool(_lookup(config, "norm_adv_by_std_in_grpo")):
        out.append(f"algorithm.norm_adv_by_std_in_grpo=True is ignored by the max@K estimator '{method}': dividing "
                   "by a per-group std would re-weight prompts and bias the max@K gradient; set it False")
    return out


@dataclass(frozen=True)
class MaxKOptions:
    """The ``algorithm.maxk`` section, checked: ``k``, ``scale``, ``undersized``, ``val_k``."""

    k: int
    scale: Scale = "per_sample"
    undersized: str = "zero"
    val_k: tuple[int, ...] = ()


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
    return MaxKOptions(k=k, scale=scale, undersized=undersized, val_k=validation_ks(config))


@cache
def make_estimator(method: str) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """The verl advantage-estimator function for ``method`` (one object per method, so registering is idempotent)."""
    if method not in maxpo.METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of: {', '.join(maxpo.METHODS)}")

    def estimator(token_level_rewards: torch.Tensor, response_mask: torch.Tensor, config: Any = None,
                  index: np.ndarray | None = None, **_: Any) -> tuple[torch.Tensor, torch.Tensor]:
        options = read_options(config, method)
        for message in objective_warnings(config, method):
            warnings.warn(message, UserWarning, stacklevel=2)
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


def no_signal_uids(scores: torch.Tensor, index: np.ndarray, k: int, method: str = "maxpo") -> list[Any]:
    """The ``uid`` of every group whose max@K advantages are all zero (it adds nothing to the gradient).

    ``scores``: one scalar reward per response (``token_level_rewards.sum(-1)``);
    ``index``: the ``uid`` per response. Groups too small for the method count as
    without signal (their advantage is 0). Order: first appearance in ``index``.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # undersized groups are reported as silent here
        result = group_advantages(scores, index, k, method, scale="sum", require_usable=False)
    return result.no_signal_labels


def drop_no_signal_groups(data: Any, k: int, method: str = "maxpo") -> tuple[Any, list[Any]]:
    """A verl ``DataProto`` without the groups that have no max@K signal, and the dropped groups' ``uid`` values.

    Reads ``data.batch["token_level_rewards"]`` (summed per response) and
    ``data.non_tensor_batch["uid"]``, and keeps the rows of the other groups with
    verl's own ``DataProto.select_idxs``, in their order. Call it where a trainer
    filters its batch before the update (DAPO's ``filter_groups`` would keep the
    groups whose rewards differ but whose max@K advantages are all zero).
    """
    k, method, _ = check_options(k, method, "sum")
    uids = np.asarray(data.non_tensor_batch["uid"], dtype=object)
    scores = data.batch["token_level_rewards"].sum(dim=-1)
    silent = no_signal_uids(scores, uids, k, method)
    keep = ~np.isin(uids, np.asarray(silent, dtype=object)) if silent else np.ones(len(uids), dtype=bool)
    return data.select_idxs(keep), silent


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

    Idempotent. Imports ``verl.trainer.ppo.core_algos``. Raises ``ImportError``
    without verl, ``RuntimeError`` for an unsupported version, and verl's
    ``ValueError`` if a name is already taken by another function.
    """
    check_verl_version()
    from verl.trainer.ppo import core_algos

    for name, method in ESTIMATORS.items():
        core_algos.register_adv_est(name)(make_estimator(method))
    return list(ESTIMATORS)


#: Key of ``algorithm.maxk`` that switches on the unbiased validation metrics (a k or a list of k).
VALIDATION_KEY = "val_k"

#: True once verl's trainer reports the validation metrics (when ``algorithm.maxk.val_k`` is set).
VALIDATION_PATCHED = False


def validation_ks(config: Any) -> tuple[int, ...]:
    """The k values of ``algorithm.maxk.val_k`` (verl's ``algorithm`` config), or ``()`` when it is not set."""
    section = _lookup(config, CONFIG_KEY)
    value = _lookup(section, VALIDATION_KEY)
    if value is None:
        return ()
    if hasattr(value, "__iter__") and not isinstance(value, (str, bytes)):
        value = list(value)
    return check_ks(value, f"algorithm.{CONFIG_KEY}.{VALIDATION_KEY}")


def validation_metrics(data_sources: Any, sample_uids: Any, reward_extra_infos: Mapping[str, Any],
                       ks: Any) -> dict[str, float]:
    """The unbiased validation metrics verl reports when ``algorithm.maxk.val_k`` is set.

    Arguments as verl's trainer passes them to ``process_validation_metrics``: the
    data source and ``uid`` of each validation sample (``val_kwargs.n`` samples per
    prompt share a ``uid``) and the per-sample values (``reward``, optionally
    ``acc``). Per data source and k (:func:`maxpo.integrations.evaluation.at_k_metrics`):
    ``val-core/<source>/maxk/max@<k>`` of ``reward`` and, when the correctness is
    0/1 (``acc`` if present, else ``reward``), ``val-core/<source>/maxk/pass@<k>``;
    each with ``val-aux/<source>/maxk/<name>@<k>/se`` (standard error across
    prompts) and ``.../prompts``.
    """
    ks = check_ks(ks)
    sources = np.asarray(data_sources, dtype=object).reshape(-1)
    uids = np.asarray(sample_uids, dtype=object).reshape(-1)
    rewards = reward_extra_infos.get("reward")
    if rewards is None or len(rewards) != len(uids) or len(sources) != len(uids):
        raise ValueError(f"validation metrics need one reward, uid and data source per sample; got "
                         f"{None if rewards is None else len(rewards)} rewards, {len(uids)} uids, "
                         f"{len(sources)} data sources")
    rewards = np.asarray(rewards, dtype=np.float64)
    acc = reward_extra_infos.get("acc")
    correct = np.asarray(acc, dtype=np.float64) if acc is not None and len(acc) == len(uids) else rewards
    out: dict[str, float] = {}
    for source in dict.fromkeys(sources.tolist()):
        rows = sources == source
        values = {"max": rewards[rows]}
        if is_binary(correct[rows]):
            values["pass"] = correct[rows]
        for name, vals in values.items():
            for key, value in at_k_metrics(vals, uids[rows], ks, name=name).items():
                section = "val-core" if key.count("/") == 0 else "val-aux"
                out[f"{section}/{source}/maxk/{key}"] = value
    return out


def patch_validation() -> None:
    """Make verl's ``RayPPOTrainer`` add :func:`validation_metrics` to its validation metrics.

    Wraps ``RayPPOTrainer._val_metrics_update`` (where verl turns the validation
    samples into metrics with ``process_validation_metrics``); the wrapper adds the
    unbiased metrics only when ``algorithm.maxk.val_k`` is set, so runs without the
    switch are unchanged. Idempotent. Done automatically when verl's trainer module
    is imported in a process where this module is loaded.
    """
    global VALIDATION_PATCHED
    check_verl_version()
    from verl.trainer.ppo import ray_trainer

    cls = ray_trainer.RayPPOTrainer
    original = cls._val_metrics_update
    if getattr(original, "_maxk_validation", False):
        VALIDATION_PATCHED = True
        return

    @functools.wraps(original)
    def _val_metrics_update(self: Any, data_sources: Any, sample_uids: Any, reward_extra_infos_dict: Any,
                            sample_turns: Any) -> dict[str, Any]:
        metrics = original(self, data_sources, sample_uids, reward_extra_infos_dict, sample_turns)
        ks = validation_ks(self.config.algorithm)
        if ks:
            metrics.update(validation_metrics(data_sources, sample_uids, reward_extra_infos_dict, ks))
        return metrics

    _val_metrics_update._maxk_validation = True  # type: ignore[attr-defined]
    cls._val_metrics_update = _val_metrics_update  # type: ignore[method-assign]
    VALIDATION_PATCHED = True


def _patch_validation_or_warn() -> None:
    try:
        patch_validation()
    except Exception as exc:  # noqa: BLE001 (reported, not lost)
        message = f"maxpo could not add its validation metrics to verl's trainer ({type(exc).__name__}: {exc})"
        logging.getLogger(__name__).warning(message)
        warnings.warn(message, RuntimeWarning, stacklevel=2)


#: Why the automatic registration failed in this process (None: it did not fail, or has not run yet).
REGISTRATION_ERROR: str | None = None

#: The module whose import triggers the automatic registration (verl's estimator registry).
REGISTRY_MODULE = "verl.trainer.ppo.core_algos"
#: The module whose import triggers the validation-metric patch (:func:`patch_validation`).
TRAINER_MODULE = "verl.trainer.ppo.ray_trainer"


def _register_or_warn() -> None:
    """:func:`register`, turning a failure into a warning (logged and ``warnings.warn``) that says why."""
    global REGISTRATION_ERROR
    try:
        register()
    except Exception as exc:  # noqa: BLE001 (any failure must be reported, not lost in verl's debug log)
        REGISTRATION_ERROR = f"{type(exc).__name__}: {exc}"
        message = (f"maxpo could not register its verl advantage estimators ({REGISTRATION_ERROR}); "
                   "adv_estimator=maxpo will be unknown. Check with: python -m maxpo.integrations.verl --check")
        logging.getLogger(__name__).warning(message)
        warnings.warn(message, RuntimeWarning, stacklevel=2)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs a callback right after a module has been imported (executed), wherever the import comes from.

    Finds the module's spec with the other finders and wraps its loader, so that
    nothing is imported earlier than the program itself imports it.
    """

    def __init__(self, callbacks: dict[str, Callable[[], None]]) -> None:
        self.callbacks = callbacks

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.callbacks:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        callback = self.callbacks.pop(fullname)
        if not self.callbacks and self in sys.meta_path:
            sys.meta_path.remove(self)
        spec.loader = _CallbackLoader(spec.loader, callback)
        return spec


class _CallbackLoader(importlib.abc.Loader):
    """A loader that executes the module with ``inner`` and then calls ``callback``."""

    def __init__(self, inner: Any, callback: Callable[[], None]) -> None:
        self.inner, self.callback = inner, callback

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        return self.inner.create_module(spec)

    def exec_module(self, module: Any) -> None:
        module.__loader__ = self.inner
        if module.__spec__ is not None:
            module.__spec__.loader = self.inner
        self.inner.exec_module(module)
        self.callback()


def _install() -> None:
    """Register now if verl's registry is loaded, else right after it loads (never loading it here).

    verl imports this module (entry point or ``VERL_USE_EXTERNAL_MODULES``) while
    its own ``__init__`` is still running; importing ``core_algos`` then would
    import half of verl in every process, training or not. The estimators are
    registered the moment ``core_algos`` is imported, which precedes any lookup in
    its registry. Likewise the validation metrics patch waits for verl's trainer.
    """
    callbacks: dict[str, Callable[[], None]] = {}
    if REGISTRY_MODULE in sys.modules:
        _register_or_warn()
    else:
        callbacks[REGISTRY_MODULE] = _register_or_warn
    if TRAINER_MODULE in sys.modules:
        _patch_validation_or_warn()
    else:
        callbacks[TRAINER_MODULE] = _patch_validation_or_warn
    if callbacks:
        sys.meta_path.insert(0, _AfterImport(callbacks))


def registered() -> dict[str, str]:
    """The max@K estimators in verl's registry now: name -> qualified name of the registered function.

    Only maxpo's own functions count (the object :func:`make_estimator` makes for
    that name's method); a name another plugin holds is in :func:`held_by_others`.
    """
    from verl.trainer.ppo import core_algos

    out = {}
    for name, method in ESTIMATORS.items():
        fn = core_algos.ADV_ESTIMATOR_REGISTRY.get(name)
        if fn is not None and fn is make_estimator(method):
            out[name] = f"{fn.__module__}.{fn.__qualname__}"
    return out


def held_by_others() -> dict[str, str]:
    """Names of :data:`ESTIMATORS` that verl's registry maps to a function that is not maxpo's:
    name -> that function's qualified name (verl would train with it under ``adv_estimator=name``)."""
    from verl.trainer.ppo import core_algos

    out = {}
    for name, method in ESTIMATORS.items():
        fn = core_algos.ADV_ESTIMATOR_REGISTRY.get(name)
        if fn is not None and fn is not make_estimator(method):
            out[name] = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m maxpo.integrations.verl --check``: import verl as a training process does, print what is registered.

    Exit status 0 when every estimator of :data:`ESTIMATORS` is registered, 2
    (one line ``error: ...``) when not, with the reason.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m maxpo.integrations.verl",
                                     description="Check that verl sees maxpo's max@K advantage estimators.")
    parser.add_argument("--check", action="store_true", required=True,
                        help="import verl (which loads its plugins) and its estimator registry; print the "
                             "max@K estimators registered there")
    parser.parse_args(argv)
    try:
        version = check_verl_version()
        import verl.trainer.ppo.core_algos  # noqa: F401 (the import that triggers the registration)
    except (ImportError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    module = sys.modules.get(__name__ if __name__ != "__main__" else "maxpo.integrations.verl")
    # the registry holds the functions of the module verl imported (under python -m, this file runs as
    # __main__ too, and its make_estimator makes other objects): ask that module
    found = module.registered() if module is not None else registered()
    others = module.held_by_others() if module is not None else held_by_others()
    missing = [name for name in ESTIMATORS if name not in found]
    if missing:
        reasons = []
        if module is None:
            reasons.append("verl did not import maxpo.integrations.verl: no 'maxpo' entry point in the group "
                           "verl.plugins is installed (pip install maxpo), VERL_USE_EXTERNAL_PLUGINS excludes it, "
                           "and VERL_USE_EXTERNAL_MODULES does not name it")
        elif getattr(module, "REGISTRATION_ERROR", None):
            reasons.append(f"registration failed: {module.REGISTRATION_ERROR}")
        if others:
            held = ", ".join(f"{name} -> {fn}" for name, fn in others.items())
            reasons.append(f"another plugin's function holds {len(others)} of these names in verl's registry "
                           f"({held})")
        why = "; ".join(reasons) or "maxpo.integrations.verl was imported but did not register them"
        print(f"error: verl {version}: {len(missing)} of {len(ESTIMATORS)} max@K estimators are not registered "
              f"({', '.join(missing)}): {why}", file=sys.stderr)
        return 2
    print(f"verl {version}: {len(found)} max@K advantage estimators registered: {', '.join(found)}")
    try:
        import verl.trainer.ppo.ray_trainer  # noqa: F401 (the import that installs the validation metrics)
        patched = module is not None and module.VALIDATION_PATCHED
        state = "on when the config sets" if patched else "NOT installed; needs"
    except Exception as exc:  # noqa: BLE001 (reported)
        state = f"unavailable, verl's trainer does not import ({type(exc).__name__}: {exc}); needs"
    print(f"validation metrics maxk/pass@k, maxk/max@k: {state} +algorithm.{CONFIG_KEY}.{VALIDATION_KEY}=[1,4,...]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
elif importlib.util.find_spec("verl") is not None:
    _install()
