r"""Maze training comparison: every advantage estimator, several seeds, exact learning curves.

Three experiments, each a batch of runs trained together by :func:`maxpo.experiments.maze.train`:

* ``comparison`` on the ``two_goals`` maze: every max@K method at ``K`` (``tang_loo`` and
  ``grpo_passk`` at ``K = B``, the only K they have; ``maxrl`` at ``k = B - 1``, the
  published MaxRL estimator, whose objective is the harmonic mixture of pass@1..pass@(B-1)),
  and the pass@1 methods ``grpo``, ``dr_grpo`` and ``rloo`` (which ignore K), one run per
  seed each.
* ``k_sweep`` on the same maze: ``maxpo`` with each ``K`` of ``k_sweep`` (``K = 1`` is
  RLOO divided by B, i.e. pass@1 training).
* ``control`` on the ``far_goal`` maze (one goal, so pass@K is a monotone function of
  pass@1 and both objectives have the same optimum): the methods of ``comparison``.

Curves are exact (:meth:`maxpo.experiments.maze.Maze.pass_at_k`), so the bands (95% t-intervals
over seeds) show run-to-run variation only.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import torch

import maxpo
from maxpo.experiments.maze import Maze, Run, TrainConfig, TrainResult, maze, train
from maxpo.experiments.stats import seed_band

__all__ = ["MazeStudyConfig", "PASS1_METHODS", "final_table", "load", "method_runs", "quick_config",
           "rounding_divergence", "run_maze_study", "seeds_reaching", "summarise", "with_train"]

#: methods that target the mean reward (pass@1) and ignore K
PASS1_METHODS = ("grpo", "dr_grpo", "rloo")


@dataclass(frozen=True)
class MazeStudyConfig:
    """What the maze study trains (see the module docstring)."""

    maze: str = "two_goals"
    control_maze: str = "far_goal"
    k: int = 8
    methods: tuple[str, ...] = tuple(maxpo.METHODS)
    k_sweep: tuple[int, ...] = (1, 2, 4, 8, 12, 15)
    seeds: int = 10
    train: TrainConfig = field(default_factory=TrainConfig)
    experiments: tuple[str, ...] = ("comparison", "k_sweep", "control")


def quick_config(**overrides: Any) -> MazeStudyConfig:
    """A small study (seconds): fewer methods, seeds and steps."""
    base: dict[str, Any] = dict(methods=("maxpo", "pkpo_loo1", "pkpo_s", "grpo"), k_sweep=(1, 4, 8), seeds=3,
                                train=TrainConfig(steps=150, eval_every=10))
    base.update(overrides)
    return MazeStudyConfig(**base)


def method_runs(methods: tuple[str, ...], k: int, seeds: int, group_size: int) -> list[Run]:
    """One run per method and seed: pass@1 methods get ``k = 1``, ``tang_loo`` and ``grpo_passk``
    get ``k = B``, ``maxrl`` gets ``k = B - 1`` (the published MaxRL)."""
    fixed = {"tang_loo": group_size, "grpo_passk": group_size, "maxrl": group_size - 1}
    runs: list[Run] = []
    for m in methods:
        mk = 1 if m in PASS1_METHODS else fixed.get(m, k)
        runs.extend(Run(m, mk, s) for s in range(seeds))
    return runs


def _maze_info(mz: Maze) -> dict[str, Any]:
    p0 = mz.success_probs(mz.initial_logits(1))[0]
    return {"name": mz.name, "description": mz.description, "layout": list(mz.rows), "horizon": mz.horizon,
            "goals": list(mz.goals), "weights": list(mz.weights),
            "shortest_paths": [mz.shortest_path(g) for g in mz.goal_cells],
            "random_walk_success": p0.tolist()}


def summarise(res: TrainResult, group_by: str = "method") -> dict[str, dict[str, Any]]:
    """Per method (or per K): mean and 95% band over seeds of every curve, and final values per seed."""
    groups: dict[str, list[int]] = {}
    for i, run in enumerate(res.runs):
        key = run.method if group_by == "method" else str(run.k)
        groups.setdefault(key, []).append(i)
    out = {}
    for key, idx in groups.items():
        c = res.curves[idx]  # (seeds, evals, ks)
        ts = res.task_success[idx]  # (seeds, evals, tasks)
        entry: dict[str, Any] = {"k": res.runs[idx[0]].k, "method": res.runs[idx[0]].method, "seeds": len(idx)}
        for j, kk in enumerate(res.config.eval_ks):
            mean, lo, hi = seed_band(c[:, :, j])
            entry[f"pass@{kk}"] = {"mean": _r(mean), "lo": _r(lo), "hi": _r(hi), "final": _r(c[:, -1, j])}
        for t in range(ts.shape[-1]):
            mean, lo, hi = seed_band(ts[:, :, t])
            entry[f"task{t}"] = {"mean": _r(mean), "lo": _r(lo), "hi": _r(hi), "final": _r(ts[:, -1, t])}
        entry["nonzero_groups"] = _r(res.nonzero_groups[idx])
        entry["mean_abs_adv"] = [float(f"{v:.4g}") for v in res.mean_abs_adv[idx].tolist()]
        out[key] = entry
    return out


def _r(t: torch.Tensor) -> list[float]:
    return [round(float(v), 5) for v in t.reshape(-1).tolist()]


def run_maze_study(cfg: MazeStudyConfig | None = None, progress: bool = True) -> dict[str, Any]:
    """Train every experiment of ``cfg``; returns a JSON-ready dict with curves, summaries and timings."""
    cfg = cfg or MazeStudyConfig()
    unknown = [m for m in cfg.methods if m not in maxpo.METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {list(maxpo.METHODS)}")
    b = cfg.train.group_size
    plan: dict[str, tuple[Maze, list[Run], str]] = {}
    if "comparison" in cfg.experiments:
        plan["comparison"] = (maze(cfg.maze), method_runs(cfg.methods, cfg.k, cfg.seeds, b), "method")
    if "k_sweep" in cfg.experiments:
        plan["k_sweep"] = (maze(cfg.maze), [Run("maxpo", k, s) for k in cfg.k_sweep for s in range(cfg.seeds)], "k")
    if "control" in cfg.experiments:
        plan["control"] = (maze(cfg.control_maze), method_runs(cfg.methods, cfg.k, cfg.seeds, b), "method")
    out: dict[str, Any] = {"study": "maze", "config": _config_dict(cfg), "experiments": {}}
    start = time.perf_counter()
    for name, (mz, runs, group_by) in plan.items():
        t0 = time.perf_counter()
        res = train(mz, runs, cfg.train, progress=progress)
        out["experiments"][name] = {
            "maze": _maze_info(mz), "group_by": group_by, "k": cfg.k,
            "eval_steps": res.eval_steps, "eval_ks": list(cfg.train.eval_ks),
            "runs": [{"method": r.method, "k": r.k, "seed": r.seed} for r in runs],
            "summary": summarise(res, group_by), "seconds": time.perf_counter() - t0,
        }
    out["seconds"] = time.perf_counter() - start
    return out


def _config_dict(cfg: MazeStudyConfig) -> dict[str, Any]:
    d = asdict(cfg)
    d["train"] = asdict(cfg.train)
    return d


def with_train(cfg: MazeStudyConfig, **train_overrides: Any) -> MazeStudyConfig:
    """``cfg`` with some training hyper-parameters replaced."""
    return replace(cfg, train=replace(cfg.train, **train_overrides))


def load(path: str | Path) -> dict[str, Any]:
    """Read a results file of ``python -m maxpo.experiments maze``."""
    from maxpo.experiments.provenance import read_json

    return read_json(path)


def seeds_reaching(entry: dict[str, Any], task: int, threshold: float = 0.05) -> int:
    """Number of seeds whose final policy reaches goal ``task`` with probability above ``threshold``."""
    return sum(v > threshold for v in entry[f"task{task}"]["final"])


def final_table(exp: dict[str, Any], ks: Sequence[int] = (1, 8), task: int | None = None) -> list[dict[str, Any]]:
    """One row per entry of an experiment's summary: final pass@k (mean and 95% interval over seeds),
    seeds whose policy reaches goal ``task``, and the mean |advantage| the method produced."""
    rows = []
    for entry in exp["summary"].values():
        row: dict[str, Any] = {"method": entry["method"], "K": entry["k"]}
        for k in ks:
            s = entry[f"pass@{k}"]
            row[f"pass@{k}"] = f"{s['mean'][-1]:.3f} [{max(s['lo'][-1], 0):.3f}, {min(s['hi'][-1], 1):.3f}]"
        if task is not None:
            row[f"seeds reaching {exp['maze']['goals'][task]}"] = f"{seeds_reaching(entry, task)}/{entry['seeds']}"
        row["mean |A|"] = f"{sum(entry['mean_abs_adv']) / len(entry['mean_abs_adv']):.2g}"
        rows.append(row)
    return rows


def rounding_divergence(steps: int = 300, every: int = 50, seed: int = 1, k: int = 8,
                        maze_name: str = "two_goals") -> list[tuple[int, float]]:
    """Train ``maxpo`` and ``maxpo_pairwise`` (equal advantages up to rounding) on the same samples and
    return ``(step, max |theta_maxpo - theta_pairwise|)`` every ``every`` steps: how training amplifies
    rounding differences."""
    res = train(maze(maze_name), [Run("maxpo", k, seed), Run("maxpo_pairwise", k, seed)],
                TrainConfig(steps=steps, eval_every=every), record_logits=True)
    hist = cast(torch.Tensor, res.logits_history)  # recorded: record_logits=True
    return [(s, float((hist[0, i] - hist[1, i]).abs().max())) for i, s in enumerate(res.eval_steps)]
