r"""A small grid maze with a sparse reward, a tabular softmax policy, and batched training.

The environment. A grid of free cells (``.``) and walls (``#``); one start cell
``S``; goal cells marked by letters. The four actions move up, right, down or
left; a move into a wall leaves the agent where it is (the step still counts).
An episode ends when the agent enters *its* goal, with reward 1, or after
``horizon`` steps, with reward 0.

Tasks (prompts). A maze may have several goal cells. Each task is one goal with
a probability (``weights``); a group of ``B`` rollouts shares one task, as the
samples of one prompt share its hidden answer. The policy
:math:`\pi(a \mid s) = \mathrm{softmax}(\theta_s)_a` sees only the cell, not the task,
so with two goals it must decide how to split its attempts.

Exact evaluation. With the task's goal absorbing, the success probability
:math:`p_t = P(\text{reach goal } t \text{ within the horizon})` is computed exactly by
propagating the state distribution (:meth:`Maze.success_probs`), and

.. math::

    \mathrm{pass@}K = \sum_t w_t \bigl(1 - (1 - p_t)^K\bigr),

the expected max of ``K`` rewards of one prompt. Learning curves therefore carry
no evaluation noise.

Policy gradient. For a tabular softmax,
:math:`\nabla_{\theta_s} \log\pi(a \mid s) = e_a - \pi(\cdot \mid s)`, and an episode's
score is the sum over its steps; :meth:`Maze.policy_gradient` forms
:math:`\sum_{\text{episodes}} A_e \sum_t \nabla \log \pi(a_t \mid s_t)` for many runs at once.

:func:`train` runs many independent training runs (method x K x seed) as one
batch of tensors. Runs with the same seed share their random numbers (common
random numbers), so a run's result does not depend on which other runs are in
the batch.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

import maxpo

__all__ = ["Maze", "MAZES", "Rollouts", "Run", "TrainConfig", "TrainResult", "maze", "train"]

#: action index -> (row step, column step): up, right, down, left
MOVES: tuple[tuple[int, int], ...] = ((-1, 0), (0, 1), (1, 0), (0, -1))
_F64 = torch.float64


@dataclass(frozen=True)
class Rollouts:
    """A batch of episodes: ``(..., T)`` cell/action/alive tensors and ``(...)`` rewards and lengths."""

    states: torch.Tensor  # int64 (..., T): cell before each step
    actions: torch.Tensor  # int64 (..., T)
    alive: torch.Tensor  # bool (..., T): the step was taken (the goal not yet reached)
    rewards: torch.Tensor  # float64 (...): 1 if the goal was reached within the horizon
    lengths: torch.Tensor  # int64 (...): steps taken


@dataclass(frozen=True)
class Maze:
    """A grid maze with a start cell, goal cells with task weights, and a step limit."""

    name: str
    rows: tuple[str, ...]
    horizon: int
    goals: tuple[str, ...]  # goal letters, one task each
    weights: tuple[float, ...]  # task probabilities
    description: str = ""
    cells: tuple[tuple[int, int], ...] = field(init=False, repr=False)
    start: int = field(init=False, repr=False)
    goal_cells: tuple[int, ...] = field(init=False, repr=False)
    next_cell: torch.Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len({len(r) for r in self.rows}) != 1:
            raise ValueError("every row of the layout must have the same length")
        if len(self.goals) != len(self.weights) or not self.goals:
            raise ValueError("need one weight per goal (and at least one goal)")
        if any(w <= 0 for w in self.weights) or not math.isclose(sum(self.weights), 1.0, abs_tol=1e-12):
            raise ValueError(f"task weights must be > 0 and sum to 1, got {self.weights}")
        if self.horizon < 1:
            raise ValueError("horizon must be >= 1")
        cells = [(i, j) for i, row in enumerate(self.rows) for j, ch in enumerate(row) if ch != "#"]
        index = {c: n for n, c in enumerate(cells)}
        starts = [index[c] for c in cells if self.rows[c[0]][c[1]] == "S"]
        if len(starts) != 1:
            raise ValueError(f"the layout needs exactly one start cell 'S', found {len(starts)}")
        goal_cells = []
        for g in self.goals:
            found = [index[c] for c in cells if self.rows[c[0]][c[1]] == g]
            if len(found) != 1:
                raise ValueError(f"goal {g!r} must appear exactly once in the layout, found {len(found)}")
            goal_cells.append(found[0])
        nxt = torch.empty((len(cells), 4), dtype=torch.int64)
        for n, (i, j) in enumerate(cells):
            for a, (di, dj) in enumerate(MOVES):
                target = (i + di, j + dj)
                nxt[n, a] = index.get(target, n)  # walls and the border: stay
        object.__setattr__(self, "cells", tuple(cells))
        object.__setattr__(self, "start", starts[0])
        object.__setattr__(self, "goal_cells", tuple(goal_cells))
        object.__setattr__(self, "next_cell", nxt)

    @property
    def n_cells(self) -> int:
        return len(self.cells)

    @property
    def n_tasks(self) -> int:
        return len(self.goals)

    def shortest_path(self, goal: int) -> int:
        """Number of steps of the shortest path from the start to cell ``goal`` (BFS)."""
        dist = {self.start: 0}
        frontier = [self.start]
        while frontier:
            nxt_frontier = []
            for c in frontier:
                for a in range(4):
                    d = int(self.next_cell[c, a])
                    if d not in dist:
                        dist[d] = dist[c] + 1
                        nxt_frontier.append(d)
            frontier = nxt_frontier
        if goal not in dist:
            raise ValueError(f"cell {goal} is unreachable from the start")
        return dist[goal]

    def initial_logits(self, runs: int = 1) -> torch.Tensor:
        """Uniform policy: zeros of shape ``(runs, n_cells, 4)`` (float64)."""
        return torch.zeros((runs, self.n_cells, 4), dtype=_F64)

    # ---- exact evaluation
    def success_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """Exact P(reach goal t within the horizon) for each task: ``(..., n_tasks)``.

        Propagates the state distribution ``horizon`` times with the task's goal absorbing.
        ``logits`` is ``(..., n_cells, 4)``.
        """
        pi = torch.softmax(logits.to(_F64), -1)
        lead = pi.shape[:-2]
        n = self.n_cells
        flow_to = self.next_cell.reshape(-1)  # (n*4,)
        dist = torch.zeros(lead + (self.n_tasks, n), dtype=_F64)
        dist[..., self.start] = 1.0
        goals = torch.tensor(self.goal_cells)
        task_idx = torch.arange(self.n_tasks)
        success = torch.zeros(lead + (self.n_tasks,), dtype=_F64)
        for _ in range(self.horizon):
            mass = (dist.unsqueeze(-1) * pi.unsqueeze(-3)).reshape(lead + (self.n_tasks, n * 4))
            dist = torch.zeros_like(dist).index_add_(-1, flow_to, mass)
            reached = dist[..., task_idx, goals]
            success = success + reached
            dist[..., task_idx, goals] = 0.0
        return success.clamp(0.0, 1.0)

    def occupancy(self, logits: torch.Tensor) -> torch.Tensor:
        """Expected number of steps spent in each cell before the episode ends, averaged over
        tasks with their weights: ``(..., n_cells)`` (exact, like :meth:`success_probs`)."""
        pi = torch.softmax(logits.to(_F64), -1)
        lead = pi.shape[:-2]
        n = self.n_cells
        flow_to = self.next_cell.reshape(-1)
        dist = torch.zeros(lead + (self.n_tasks, n), dtype=_F64)
        dist[..., self.start] = 1.0
        goals = torch.tensor(self.goal_cells)
        task_idx = torch.arange(self.n_tasks)
        visits = torch.zeros_like(dist)
        for _ in range(self.horizon):
            visits = visits + dist
            mass = (dist.unsqueeze(-1) * pi.unsqueeze(-3)).reshape(lead + (self.n_tasks, n * 4))
            dist = torch.zeros_like(dist).index_add_(-1, flow_to, mass)
            dist[..., task_idx, goals] = 0.0
        return (visits * torch.tensor(self.weights, dtype=_F64).unsqueeze(-1)).sum(-2)

    def pass_at_k(self, logits: torch.Tensor, ks: Iterable[int]) -> torch.Tensor:
        r"""Exact :math:`\sum_t w_t (1 - (1 - p_t)^K)` for each ``K`` in ``ks``: ``(..., len(ks))``."""
        p = self.success_probs(logits)
        w = torch.tensor(self.weights, dtype=_F64)
        return torch.stack([((1 - (1 - p) ** int(k)) * w).sum(-1) for k in ks], -1)

    # ---- sampling
    def rollout(self, logits: torch.Tensor, tasks: torch.Tensor, uniforms: torch.Tensor) -> Rollouts:
        """Episodes for policies ``logits`` ``(R, n_cells, 4)``.

        ``tasks`` ``(R, ...)`` gives each episode's task; ``uniforms`` ``(R, ..., T)`` with
        ``T >= horizon`` are the uniform numbers that pick the actions (inverse CDF of
        :math:`\\pi(\\cdot \\mid s)`), so the episodes are a deterministic function of them.
        """
        pi = torch.softmax(logits.to(_F64), -1)
        cum = torch.cumsum(pi, -1)
        r = logits.shape[0]
        shape = tuple(tasks.shape)
        run_idx = torch.arange(r).view((r,) + (1,) * (len(shape) - 1)).expand(shape)
        goal = torch.tensor(self.goal_cells)[tasks]
        state = torch.full(shape, self.start, dtype=torch.int64)
        alive = torch.ones(shape, dtype=torch.bool)
        reward = torch.zeros(shape, dtype=_F64)
        t_max = self.horizon
        states = torch.empty(shape + (t_max,), dtype=torch.int64)
        actions = torch.empty(shape + (t_max,), dtype=torch.int64)
        alives = torch.empty(shape + (t_max,), dtype=torch.bool)
        for t in range(t_max):
            c = cum[run_idx, state]  # (..., 4)
            a = (uniforms[..., t].unsqueeze(-1) >= c[..., :3]).sum(-1)
            states[..., t] = state
            actions[..., t] = a
            alives[..., t] = alive
            nxt = self.next_cell[state, a]
            state = torch.where(alive, nxt, state)
            hit = alive & (state == goal)
            reward = torch.where(hit, torch.ones_like(reward), reward)
            alive = alive & ~hit
        lengths = alives.sum(-1)
        return Rollouts(states=states, actions=actions, alive=alives, rewards=reward, lengths=lengths)

    def policy_gradient(self, logits: torch.Tensor, ro: Rollouts, adv: torch.Tensor) -> torch.Tensor:
        r""":math:`\sum_e A_e \sum_{t < \tau_e} (e_{a_t} - \pi(\cdot \mid s_t))` at row :math:`s_t`, per run.

        ``logits`` ``(R, n_cells, 4)``; ``ro`` and ``adv`` ``(R, ...)``; returns ``(R, n_cells, 4)``.
        """
        r, n = logits.shape[0], self.n_cells
        pi = torch.softmax(logits.to(_F64), -1)
        w = (adv.to(_F64).unsqueeze(-1) * ro.alive).reshape(r, -1)
        s = ro.states.reshape(r, -1)
        a = ro.actions.reshape(r, -1)
        counts = torch.zeros((r, n * 4), dtype=_F64).scatter_add_(1, s * 4 + a, w).view(r, n, 4)
        visits = torch.zeros((r, n), dtype=_F64).scatter_add_(1, s, w)
        return counts - visits.unsqueeze(-1) * pi

    def render(self) -> str:
        """The layout as text."""
        return "\n".join(self.rows)


# --------------------------------------------------------------------------- mazes
_TWO_GOALS = (
    "#############",
    "#A..S.......#",
    "#######.###.#",
    "#.....#...#.#",
    "#.###.###.#.#",
    "#...#.....#B#",
    "#############",
)

_FAR_GOAL = (
    "#########",
    "#S..#...#",
    "###.#.#.#",
    "#.....#.#",
    "#.###.#.#",
    "#...#..G#",
    "#########",
)

#: name -> (layout, horizon, goals, weights, description)
MAZES: dict[str, tuple[tuple[str, ...], int, tuple[str, ...], tuple[float, ...], str]] = {
    "two_goals": (
        _TWO_GOALS, 24, ("A", "B"), (0.4, 0.6),
        "two hidden goals: A (weight 0.4) three steps from the start, B (weight 0.6) at the end "
        "of a long corridor; a prompt's goal is hidden from the policy",
    ),
    "far_goal": (
        _FAR_GOAL, 20, ("G",), (1.0,),
        "one goal at the end of a winding corridor: a random walk rarely reaches it in time",
    ),
}


def maze(name: str, horizon: int | None = None) -> Maze:
    """A maze of :data:`MAZES` (optionally with another step limit)."""
    if name not in MAZES:
        raise ValueError(f"unknown maze {name!r}; choose one of {sorted(MAZES)}")
    rows, hz, goals, weights, desc = MAZES[name]
    return Maze(name=name, rows=rows, horizon=horizon or hz, goals=goals, weights=weights, description=desc)


# --------------------------------------------------------------------------- training
@dataclass(frozen=True)
class Run:
    """One training run: an advantage ``method`` of :data:`maxpo.METHODS`, its ``k``, a ``seed``."""

    method: str
    k: int
    seed: int

    @property
    def label(self) -> str:
        return f"{self.method} K={self.k} seed={self.seed}"


@dataclass(frozen=True)
class TrainConfig:
    r"""Training hyper-parameters shared by every run.

    Each step samples ``groups`` prompts (tasks by their weights) and ``group_size``
    rollouts per prompt, computes advantages per group with :func:`maxpo.advantages`,
    and takes one ascent step on :math:`\theta` along the policy gradient: ``adam``
    (per-coordinate normalisation, so a method's overall advantage scale does not
    matter) or ``sgd_normalized`` (:math:`\theta \leftarrow \theta + \eta\, \hat g / \|\hat g\|`,
    the same step length for every method).
    """

    steps: int = 400
    groups: int = 8
    group_size: int = 16
    lr: float = 0.05
    optimizer: str = "adam"
    eval_every: int = 10
    eval_ks: tuple[int, ...] = (1, 2, 4, 8, 16)


@dataclass
class TrainResult:
    """Exact learning curves of every run: ``curves[run, eval, k]`` is pass@``eval_ks[k]``."""

    runs: list[Run]
    config: TrainConfig
    eval_steps: list[int]
    curves: torch.Tensor  # (R, n_eval, n_ks) exact pass@k
    task_success: torch.Tensor  # (R, n_eval, n_tasks) exact success probability per task
    final_logits: torch.Tensor  # (R, n_cells, 4)
    nonzero_groups: torch.Tensor  # (R,) fraction of groups with a non-zero advantage, over training
    mean_abs_adv: torch.Tensor  # (R,) mean |A| over the samples of groups with a non-zero advantage
    logits_history: torch.Tensor | None = None  # (R, n_eval, n_cells, 4) if recorded

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": [{"method": r.method, "k": r.k, "seed": r.seed} for r in self.runs],
            "eval_steps": self.eval_steps,
            "eval_ks": list(self.config.eval_ks),
            "curves": self.curves.tolist(),
            "task_success": self.task_success.tolist(),
            "nonzero_groups": self.nonzero_groups.tolist(),
            "mean_abs_adv": self.mean_abs_adv.tolist(),
        }


def _check_runs(runs: Sequence[Run], cfg: TrainConfig) -> None:
    if not runs:
        raise ValueError("no runs to train")
    for run in runs:
        if run.method not in maxpo.METHODS:
            raise ValueError(f"unknown method {run.method!r} in run {run.label}")
        info = maxpo.METHODS[run.method]
        msg = info.check(cfg.group_size, run.k)
        if msg:
            raise ValueError(f"run {run.label}: method {run.method!r} {msg} (B = {cfg.group_size})")
    if cfg.optimizer not in ("adam", "sgd_normalized"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd_normalized', got {cfg.optimizer!r}")


def train(mz: Maze, runs: Sequence[Run], cfg: TrainConfig = TrainConfig(), progress: bool = False,
          record_logits: bool = False) -> TrainResult:
    """Train every run in ``runs`` from the uniform policy, all as one batch; exact curves.

    ``record_logits`` keeps the policy parameters at every evaluation step.

    Deterministic on CPU: each seed's generator draws, per step, the tasks ``(groups,)``
    and the action uniforms ``(groups, group_size, horizon)``; every run with that seed
    uses them.
    """
    runs = list(runs)
    _check_runs(runs, cfg)
    r = len(runs)
    seeds = sorted({run.seed for run in runs})
    gens = {s: torch.Generator().manual_seed(1_000_003 * s + 17) for s in seeds}
    seed_row = torch.tensor([seeds.index(run.seed) for run in runs])
    run_indices: dict[tuple[str, int], list[int]] = {}
    for i, run in enumerate(runs):
        run_indices.setdefault((run.method, run.k), []).append(i)
    by_method = {key: torch.tensor(v) for key, v in run_indices.items()}
    task_cum = torch.cumsum(torch.tensor(mz.weights, dtype=_F64), 0)
    task_cum[-1] = 1.0

    theta = mz.initial_logits(r)
    m1 = torch.zeros_like(theta)
    m2 = torch.zeros_like(theta)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    eval_steps, curves, tasks_hist, logits_hist = [], [], [], []
    nonzero = torch.zeros(r, dtype=_F64)
    abs_sum = torch.zeros(r, dtype=_F64)

    def evaluate(step: int) -> None:
        eval_steps.append(step)
        p = mz.success_probs(theta)
        w = torch.tensor(mz.weights, dtype=_F64)
        curves.append(torch.stack([((1 - (1 - p) ** k) * w).sum(-1) for k in cfg.eval_ks], -1))
        tasks_hist.append(p)
        if record_logits:
            logits_hist.append(theta.clone())

    steps: Iterable[int] = range(cfg.steps)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc=f"maze {mz.name}", unit="step")
    evaluate(0)
    for step in steps:
        u_task, u_act = [], []
        for s in seeds:
            u_task.append(torch.rand((cfg.groups,), generator=gens[s], dtype=_F64))
            u_act.append(torch.rand((cfg.groups, cfg.group_size, mz.horizon), generator=gens[s], dtype=_F64))
        tasks = torch.searchsorted(task_cum, torch.stack(u_task)[seed_row], right=True).clamp(max=mz.n_tasks - 1)
        tasks = tasks.unsqueeze(-1).expand(r, cfg.groups, cfg.group_size)
        ro = mz.rollout(theta, tasks, torch.stack(u_act)[seed_row])
        adv = torch.zeros_like(ro.rewards)
        for (method, k), idx in by_method.items():
            adv[idx] = maxpo.advantages(ro.rewards[idx], k, method)
        active = adv.abs().amax(-1) > 0  # (R, groups)
        nonzero += active.to(_F64).mean(-1)
        abs_sum += (adv.abs().mean(-1) * active).sum(-1)
        grad = mz.policy_gradient(theta, ro, adv) / cfg.groups
        if cfg.optimizer == "adam":
            m1 = beta1 * m1 + (1 - beta1) * grad
            m2 = beta2 * m2 + (1 - beta2) * grad * grad
            m1_hat = m1 / (1 - beta1 ** (step + 1))
            m2_hat = m2 / (1 - beta2 ** (step + 1))
            theta = theta + cfg.lr * m1_hat / (m2_hat.sqrt() + eps)
        else:
            norm = grad.flatten(1).norm(dim=1).view(r, 1, 1)
            theta = theta + cfg.lr * torch.where(norm > 0, grad / norm.clamp_min(1e-300), torch.zeros_like(grad))
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            evaluate(step + 1)
    return TrainResult(runs=runs, config=cfg, eval_steps=eval_steps, curves=torch.stack(curves, 1),
                       task_success=torch.stack(tasks_hist, 1), final_logits=theta,
                       nonzero_groups=nonzero / max(cfg.steps, 1),
                       mean_abs_adv=abs_sum / (nonzero * cfg.groups).clamp_min(1),
                       logits_history=torch.stack(logits_hist, 1) if record_logits else None)
