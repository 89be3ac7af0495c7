r"""max@K advantages in TRL's ``GRPOTrainer`` (TRL 1.16.x).

Usage::

    from trl import GRPOConfig
    from maxpo.integrations.trl import MaxKGRPOTrainer

    args = GRPOConfig(num_generations=8, scale_rewards="none", loss_type="dr_grpo", ...)
    trainer = MaxKGRPOTrainer(model=..., reward_funcs=..., args=args, train_dataset=...,
                              k=4, method="maxpo")          # any key of maxpo.METHODS
    trainer.train()

Where the advantages come from in TRL 1.16
------------------------------------------
``GRPOTrainer._generate_and_score_completions`` generates this process's
completions, calls ``_calculate_rewards``, which scores them and *gathers* the
``(N_total, n_reward_funcs)`` reward matrix from every process (a group's
completions may sit on several processes), then computes GRPO advantages inline
on the gathered rewards, with groups being consecutive runs of
``num_generations`` rows, and keeps this process's slice
``[process_index * n_local, (process_index + 1) * n_local)``. There is no hook
for the advantage alone, so :class:`MaxKAdvantageMixin` overrides the two
methods around it: ``_calculate_rewards`` (call TRL's, keep the gathered matrix)
and ``_generate_and_score_completions`` (call TRL's, then replace
``output["advantages"]`` with max@K advantages computed from the kept matrix,
grouped and sliced exactly as TRL groups and slices). Nothing of TRL's code is
repeated; TRL's own advantage is computed and discarded. The trainer also
checks, at every generation, that each run of ``num_generations`` gathered
prompts (from TRL's own prompt log) is one prompt, so a change in how TRL lays
out groups fails loudly instead of mixing prompts.

Rewards: the weighted sum of the reward functions (``reward_weights``), with
``None`` (NaN) from a single function counted as 0 as in TRL; a completion that
no function could score is left out of its group (its advantage is 0, and its
group's ``B`` is one smaller). A group left too small for the method gets
advantage 0 and is counted in ``maxk/undersized_groups``, even when it is the
only group of the step: groups that shrink at run time are data.

Checked before the model loads (:func:`check_grpo_config`): ``scale_rewards``,
``multi_objective_aggregation``, ``num_generations`` against ``k``, and a method
of 0/1 rewards (``chen_passk``) with several reward functions or weights. The
evaluation group size ``num_generations_eval`` may be smaller than the method
needs (its advantages only enter the evaluation loss; they are then 0).

Logged metrics (TRL's logs, ``eval_`` prefixed in evaluation):
``maxk/max@<K>`` the batch's max@K estimate (pass@K for 0/1 rewards; the mean
over groups of :func:`maxpo.maxk_estimate`), ``maxk/no_signal_frac`` the fraction
of groups whose advantages are all 0 (TRL's ``frac_reward_zero_std`` counts only
groups of equal rewards), ``maxk/mean_abs_advantage``, ``maxk/undersized_groups``
and ``maxk/unscored_completions``.

CPU or GPU: ``GRPOConfig`` defaults to ``bf16=True``, which needs a GPU; on a CPU
pass ``use_cpu=True, bf16=False``.

What changes compared with GRPO
-------------------------------
* ``scale_rewards`` must be ``"none"``: the advantage is the max@K estimator,
  not a standardised reward (dividing by a per-group std would re-weight prompts
  and bias the gradient; see the book's appendix). The trainer refuses other values.
* ``multi_objective_aggregation`` must be ``"sum_then_normalize"`` (the sum of
  the weighted rewards is what max@K takes the maximum of).
* ``num_generations`` is the group size ``B``; ``maxpo`` needs ``k <= B - 1``.
* ``scale="per_sample"`` (default) multiplies ``maxpo`` by ``B/K``, so it is the
  canonical advantage ``Q_i - V_{-i}`` on the reward's scale (see
  :mod:`maxpo.integrations.grouping`); ``scale="sum"`` gives :func:`maxpo.advantages` unchanged.
* Prefer ``loss_type="dr_grpo"`` (a constant normaliser); ``"grpo"`` divides each
  completion by its own length, which re-weights completions by length.

Supported TRL: ``>=1.16,<1.17`` (tested with 1.16.0). The overridden methods are
private, so other versions are refused with a message that says so.
"""
from __future__ import annotations

import inspect
import warnings
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import torch

import maxpo
from maxpo.integrations.evaluation import check_ks, is_binary, per_prompt_estimates, standard_error
from maxpo.integrations.grouping import (
    GroupedAdvantages,
    Scale,
    batch_maxk_estimate,
    check_options,
    group_advantages,
    method_size_problem,
)
from maxpo.integrations.versions import import_supported

if TYPE_CHECKING:  # pragma: no cover
    from trl import GRPOTrainer

__all__ = ["SUPPORTED_TRL", "MaxKAdvantageMixin", "MaxKGRPOTrainer", "check_grpo_config", "check_trl_version"]  # noqa: F822 (lazy)

#: TRL versions whose ``GRPOTrainer`` internals this module was written and tested against.
SUPPORTED_TRL = ">=1.16,<1.17"


def check_trl_version() -> str:
    """Import TRL and return its version; raise if it is missing or not supported.

    Raises:
        ImportError: TRL (or ``packaging``) is not installed.
        RuntimeError: the installed TRL is outside :data:`SUPPORTED_TRL`, or its
            ``GRPOTrainer`` lacks the methods this module overrides.
    """
    trl = import_supported(
        "trl", "TRL", SUPPORTED_TRL, tested="1.16.0",
        relies_on="It overrides GRPOTrainer._calculate_rewards and _generate_and_score_completions, private methods "
                  "whose behaviour changes between releases")
    missing = [m for m in ("_calculate_rewards", "_generate_and_score_completions")
               if not hasattr(trl.GRPOTrainer, m)]
    if missing:
        raise RuntimeError(f"trl {trl.__version__}: GRPOTrainer has no {', '.join(missing)}; "
                           f"maxpo.integrations.trl needs TRL {SUPPORTED_TRL}")
    return trl.__version__


def check_grpo_config(args: Any, reward_funcs: Any, k: int, method: str) -> str | None:
    """Refuse a ``GRPOConfig`` (and reward functions) that cannot train ``method`` at ``k``.

    Reads only the configuration, so :class:`MaxKAdvantageMixin` calls it before
    TRL loads the model (or starts vLLM). Checks: ``args`` given, ``scale_rewards="none"``,
    ``multi_objective_aggregation="sum_then_normalize"``, ``num_generations`` large
    enough for the method, and, for a method of 0/1 rewards only
    (``METHODS[method]["binary_only"]``), one reward function with weight 1.
    Evaluation groups (``num_generations_eval``) may be smaller: they only feed
    the evaluation loss, so they are not refused; the returned string says why
    they are too small (None if they are not), and their advantages are 0.

    Raises:
        ValueError: naming the setting and the value to use.
    """
    if args is None:
        raise ValueError("pass args=GRPOConfig(scale_rewards='none', ...): TRL's default GRPOConfig divides rewards "
                         "by their per-group std, which max@K advantages must not be")
    if args.scale_rewards != "none":
        raise ValueError(
            f"scale_rewards={args.scale_rewards!r}: the max@K advantage '{method}' is never divided by a reward std "
            "(that would re-weight prompts and bias the gradient); set GRPOConfig(scale_rewards='none')")
    aggregation = getattr(args, "multi_objective_aggregation", "sum_then_normalize")
    if aggregation != "sum_then_normalize":
        raise ValueError(
            f"multi_objective_aggregation={aggregation!r}: max@K needs one scalar reward per completion, the "
            "weighted sum of the reward functions; set multi_objective_aggregation='sum_then_normalize'")
    problem = method_size_problem(method, int(args.num_generations), k)
    if problem:
        raise ValueError(f"num_generations={args.num_generations} is the group size B, and with k={k}: {problem}")
    if maxpo.METHODS[method]["binary_only"]:
        n_funcs = len(reward_funcs) if isinstance(reward_funcs, (list, tuple)) else 1
        weights = list(args.reward_weights) if args.reward_weights is not None else [1.0] * n_funcs
        if n_funcs != 1 or weights != [1.0]:
            raise ValueError(
                f"method '{method}' needs 0/1 rewards, but the reward is the weighted sum of {n_funcs} reward "
                f"function(s) with weights {weights}; use one 0/1 reward function with weight 1, or a method for "
                "any rewards (e.g. 'maxpo')")
    eval_size = int(args.num_generations_eval or args.num_generations)
    return method_size_problem(method, eval_size, k)


class MaxKAdvantageMixin:
    """Mixin for TRL's ``GRPOTrainer`` (or a subclass of it) that swaps GRPO's advantage for a max@K one.

    Put it first in the bases: ``class MyTrainer(MaxKAdvantageMixin, GRPOTrainer)``.
    Extra keyword arguments: ``k`` (required), ``method`` (a key of
    :data:`maxpo.METHODS`, default ``"maxpo"``), ``scale`` (``"per_sample"``,
    ``"sum"`` or a positive number; :mod:`maxpo.integrations.grouping`) and
    ``undersized`` (``"zero"`` or ``"raise"``, for groups left too small by
    unscorable completions).

    The configuration is checked (:func:`check_grpo_config`) before
    ``GRPOTrainer.__init__`` runs, so a bad setting fails before the model loads.

    The advantages TRL trains on (``output["advantages"]`` of
    ``_generate_and_score_completions``, and the logged ``advantages`` column) are
    ``group_advantages(rewards, row // G, k, method, scale=scale).advantages`` over
    the rewards gathered from all processes, ``G`` being ``num_generations``
    (``num_generations_eval`` in evaluation), then sliced to this process. A group
    left too small by unscorable completions gets advantage 0, even when it is
    the only group of the step. Logged metrics, per generation
    batch, over all processes: ``maxk/max@<K>`` the batch's max@K estimate (pass@K
    for 0/1 rewards), ``maxk/no_signal_frac`` the fraction of groups whose
    advantages are all 0, ``maxk/mean_abs_advantage`` the mean ``|A|`` over scored
    completions, ``maxk/undersized_groups`` and ``maxk/unscored_completions`` counts.
    """

    def __init__(self, *args: Any, k: int, method: str = "maxpo", scale: Scale = "per_sample",
                 undersized: str = "zero", eval_k: int | list[int] | None = None, **kwargs: Any) -> None:
        check_trl_version()
        self.maxk_eval_ks: tuple[int, ...] = () if eval_k is None else check_ks(eval_k, "eval_k")
        self._maxk_eval_values: dict[str, list[float]] = defaultdict(list)
        self.maxk_k, self.maxk_method, self.maxk_scale = check_options(k, method, scale, undersized)
        self.maxk_undersized = undersized
        given = inspect.signature(super().__init__).bind_partial(*args, **kwargs).arguments
        # a subclass may take **kwargs; check_grpo_config refuses a missing (None) config
        config: Any = given["args"] if "args" in given else kwargs.get("args")
        funcs = given["reward_funcs"] if "reward_funcs" in given else kwargs.get("reward_funcs")
        self.maxk_eval_problem = check_grpo_config(config, funcs, self.maxk_k, self.maxk_method)
        if self.maxk_eval_problem and config.eval_strategy != "no":
            warnings.warn(
                f"num_generations_eval={config.num_generations_eval} is too small for method '{method}' at k={k} "
                f"({self.maxk_eval_problem}): evaluation advantages (and so the evaluation loss) are 0; the "
                "evaluation rewards and maxk/ metrics are still logged", UserWarning, stacklevel=2)
        self._maxk_gathered: torch.Tensor | None = None
        super().__init__(*args, **kwargs)

    def _calculate_rewards(self, inputs: Any, prompts: Any, completions: Any, completion_ids_list: Any) -> torch.Tensor:
        """TRL's rewards (already gathered from every process); keeps a reference for the advantage step."""
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions,  # type: ignore[misc]
                                                      completion_ids_list)
        self._maxk_gathered = rewards_per_func
        return rewards_per_func

    def maxk_rewards(self, rewards_per_func: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scalar reward per row, ``sum_f w_f r_f`` with NaN counted as 0 (as TRL does), and
        ``valid``: False for rows where every function returned ``None``."""
        trainer: GRPOTrainer = self  # type: ignore[assignment]
        weights = trainer.reward_weights.to(rewards_per_func.device, rewards_per_func.dtype)
        rewards = (rewards_per_func * weights.unsqueeze(0)).nansum(dim=1)
        valid = ~torch.isnan(rewards_per_func).all(dim=1)
        return rewards, valid

    def maxk_advantages(self, rewards_per_func: torch.Tensor, group_size: int) -> GroupedAdvantages:
        """Max@K advantages for the gathered ``(N_total, n_funcs)`` reward matrix.

        Rewards from :meth:`maxk_rewards`; rows no function could score are left out
        of their group. Groups are consecutive runs of ``group_size`` rows; a group
        too small for the method gets 0 (never an error: the group size was checked
        at construction, so a small group here comes from unscorable completions).
        """
        n = rewards_per_func.shape[0]
        if n % group_size:
            raise RuntimeError(f"TRL gathered {n} rewards, not a multiple of the group size {group_size}")
        rewards, valid = self.maxk_rewards(rewards_per_func)
        groups = torch.arange(n, device=rewards.device) // group_size
        return group_advantages(rewards, groups, self.maxk_k, self.maxk_method, scale=self.maxk_scale,
                                valid=valid, undersized=self.maxk_undersized,  # type: ignore[arg-type]
                                require_usable=False)

    def maxk_metrics(self, rewards_per_func: torch.Tensor, group_size: int,
                     result: GroupedAdvantages) -> dict[str, float]:
        """The ``maxk/`` metrics of one gathered batch (see the class docstring)."""
        rewards, valid = self.maxk_rewards(rewards_per_func)
        groups = torch.arange(rewards.shape[0], device=rewards.device) // group_size
        # an all-unscored (empty) group has no signal either: it counts in numerator and denominator
        metrics = {
            "maxk/no_signal_frac": (result.no_signal + result.empty) / result.n_groups if result.n_groups else 1.0,
            "maxk/empty_groups": float(result.empty),
            "maxk/mean_abs_advantage": float(result.advantages[valid].abs().double().mean()) if bool(valid.any())
            else 0.0,
            "maxk/undersized_groups": float(result.undersized),
            "maxk/unscored_completions": float((~valid).sum()),
        }
        estimate, used = batch_maxk_estimate(rewards, groups, self.maxk_k, valid=valid)
        if used:
            metrics[f"maxk/max@{self.maxk_k}"] = estimate
        return metrics

    def _check_groups_are_prompts(self, n: int, group_size: int) -> None:
        """Each run of ``group_size`` gathered prompts (TRL's prompt log) must be one prompt.

        TRL's log is a deque of ``generation_batch_size`` prompts; a batch larger than
        that (an evaluation batch can be) is checked on its last ``maxlen`` rows. A log
        shorter than that means TRL did not log this batch's prompts as expected: an
        error, not a skipped check.
        """
        log = self._logs["prompt"]  # type: ignore[attr-defined]
        cap = getattr(log, "maxlen", None)
        expected = n if cap is None else min(n, cap)
        logged = list(log)
        if len(logged) < expected:
            raise RuntimeError(
                f"TRL's prompt log holds {len(logged)} prompts where the gathered batch of {n} completions needs "
                f"{expected}: the grouping of completions by prompt cannot be checked. This TRL version logs "
                f"prompts differently from what maxpo.integrations.trl expects (supported: trl{SUPPORTED_TRL})")
        offset = n - expected
        prompts = [None] * offset + logged[len(logged) - expected:]
        for start in range(0, n, group_size):
            group = [p for p in prompts[max(start, offset):start + group_size]]
            if any(p != group[0] for p in group):
                raise RuntimeError(
                    f"rows {start}..{start + group_size - 1} of the gathered batch are not one prompt; this TRL "
                    "version lays out groups differently from what maxpo.integrations.trl expects")

    def _generate_and_score_completions(self, inputs: Any) -> dict[str, Any]:
        """TRL's generation and scoring, with ``advantages`` replaced by the max@K advantages."""
        trainer: GRPOTrainer = self  # type: ignore[assignment]
        self._maxk_gathered = None
        output = super()._generate_and_score_completions(inputs)  # type: ignore[misc]
        gathered, self._maxk_gathered = self._maxk_gathered, None
        if gathered is None:
            raise RuntimeError("GRPOTrainer did not call _calculate_rewards; unsupported TRL version "
                               f"(maxpo.integrations.trl needs {SUPPORTED_TRL})")
        mode = "train" if trainer.model.training else "eval"
        group_size = trainer.num_generations if mode == "train" else trainer.num_generations_eval
        local = output["advantages"]
        n_local, n_total = local.shape[0], gathered.shape[0]
        if n_total != n_local * trainer.accelerator.num_processes:
            raise RuntimeError(f"gathered {n_total} rewards for {trainer.accelerator.num_processes} processes of "
                               f"{n_local} completions each; unsupported TRL layout")
        self._check_groups_are_prompts(n_total, group_size)
        with warnings.catch_warnings():
            if mode == "eval" and self.maxk_eval_problem:  # said once, at construction
                warnings.simplefilter("ignore", RuntimeWarning)
            result = self.maxk_advantages(gathered, group_size)
        start = trainer.accelerator.process_index * n_local
        output["advantages"] = result.advantages[start:start + n_local].to(local.device, local.dtype)
        logged = self._logs["advantages"]
        for _ in range(min(n_total, len(logged))):  # replace TRL's logged (GRPO) advantages
            logged.pop()
        logged.extend(result.advantages.tolist())
        for name, value in self.maxk_metrics(gathered, group_size, result).items():
            trainer._metrics[mode][name].append(value)
        if mode == "eval":
            for name, values in self.maxk_eval_estimates(gathered, group_size).items():
                trainer._metrics[mode][name].extend(values)  # one value per prompt: TRL's mean is over prompts
                self._maxk_eval_values[name].extend(values)
        return output

    def maxk_eval_estimates(self, rewards_per_func: torch.Tensor, group_size: int) -> dict[str, list[float]]:
        """Per-prompt unbiased estimates for the ``eval_k`` metrics of one gathered evaluation batch.

        ``maxk/max@k``: :func:`maxpo.integrations.evaluation.per_prompt_estimates` of
        the scored completions of each prompt with at least ``k`` of them;
        ``maxk/pass@k``: the same, when every scored reward of the batch is 0 or 1.
        """
        if not self.maxk_eval_ks:
            return {}
        rewards, valid = self.maxk_rewards(rewards_per_func)
        rewards, valid = rewards.detach().double().cpu(), valid.cpu()
        groups = torch.arange(rewards.shape[0]) // group_size
        names = ["max", "pass"] if is_binary(rewards[valid].tolist()) else ["max"]
        out: dict[str, list[float]] = {}
        for k in self.maxk_eval_ks:
            values = per_prompt_estimates(rewards, groups, k, valid=valid).tolist()
            if values:
                for name in names:
                    out[f"maxk/{name}@{k}"] = values
        return out

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """TRL's ``log``, after adding ``maxk/<name>@k/se`` (standard error across the evaluated prompts)."""
        trainer: GRPOTrainer = self  # type: ignore[assignment]
        if self._maxk_eval_values and not getattr(trainer.model, "training", True):
            for name, values in self._maxk_eval_values.items():
                trainer._metrics["eval"][f"{name}/se"] = [standard_error(values)]
                trainer._metrics["eval"][f"{name}/prompts"] = [float(len(values))]
            self._maxk_eval_values.clear()
        super().log(logs, start_time)  # type: ignore[misc]


def _build_trainer_class() -> type:
    check_trl_version()
    from trl import GRPOTrainer

    class MaxKGRPOTrainer(MaxKAdvantageMixin, GRPOTrainer):
        """TRL ``GRPOTrainer`` whose advantages are max@K advantages from :mod:`maxpo`.

        Same arguments as ``GRPOTrainer`` plus ``k`` (required), ``method``,
        ``scale`` and ``undersized`` (:class:`MaxKAdvantageMixin`).
        """

    MaxKGRPOTrainer.__module__ = __name__
    return MaxKGRPOTrainer


def __getattr__(name: str) -> Any:
    """Build ``MaxKGRPOTrainer`` on first access, so this module imports without TRL."""
    if name == "MaxKGRPOTrainer":
        cls = _build_trainer_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
