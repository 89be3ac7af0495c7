"""maxpo.experiments.maze: dynamics checked by hand, exact evaluation and policy gradient against enumeration."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from maxpo.experiments import maze_study as ms
from maxpo.experiments.maze import MAZES, Maze, Run, TrainConfig, maze, train

#  col: 0 1 2 3 4
TINY = ("#####",   # row 0
        "#S.A#",   # row 1: S at (1,1), A at (1,3)
        "#.#B#",   # row 2: (2,1) free, B at (2,3)
        "#####")
UP, RIGHT, DOWN, LEFT = range(4)


def tiny(horizon: int = 4) -> Maze:
    return Maze("tiny", TINY, horizon, ("A", "B"), (0.25, 0.75))


def cell(mz: Maze, rc: tuple[int, int]) -> int:
    return mz.cells.index(rc)


def forced(mz: Maze, plan: dict[int, int], strength: float = 60.0) -> torch.Tensor:
    """Logits of a (numerically) deterministic policy: action plan[cell] in each listed cell."""
    th = mz.initial_logits(1)
    for c, a in plan.items():
        th[0, c, a] = strength
    return th


# --------------------------------------------------------------------------- dynamics by hand
def test_transitions_walls_and_cells():
    mz = tiny()
    s, free, a, b, below = (cell(mz, rc) for rc in [(1, 1), (1, 2), (1, 3), (2, 3), (2, 1)])
    assert mz.start == s and mz.goal_cells == (a, b) and mz.n_cells == 5
    assert mz.next_cell[s].tolist() == [s, free, below, s]  # up: wall, right, down, left: wall
    assert mz.next_cell[free].tolist() == [free, a, free, s]  # down from (1,2) is a wall
    assert mz.next_cell[a].tolist() == [a, a, b, free]
    assert mz.next_cell[below].tolist() == [s, below, below, below]
    assert mz.shortest_path(a) == 2 and mz.shortest_path(b) == 3


def test_goal_ends_the_episode_and_the_step_limit_binds():
    mz = tiny(horizon=4)
    s, free, a = (cell(mz, rc) for rc in [(1, 1), (1, 2), (1, 3)])
    th = forced(mz, {s: RIGHT, free: RIGHT, a: DOWN})
    u = torch.full((1, 2, 4), 0.5, dtype=torch.float64)
    ro = mz.rollout(th, torch.tensor([[0, 1]]), u)
    # task A: reached after 2 steps, then no more steps are taken
    assert ro.rewards[0].tolist() == [1.0, 1.0]
    assert ro.lengths[0].tolist() == [2, 3]
    assert ro.alive[0, 0].tolist() == [True, True, False, False]
    assert ro.states[0, 1, :3].tolist() == [s, free, a]  # task B walks through A (not its goal)
    # with a horizon of 2, goal B (3 steps away) is out of reach
    short = tiny(horizon=2)
    ro2 = short.rollout(th, torch.tensor([[1]]), torch.full((1, 1, 2), 0.5, dtype=torch.float64))
    assert ro2.rewards.tolist() == [[0.0]] and ro2.lengths.tolist() == [[2]]


def test_layout_validation():
    with pytest.raises(ValueError, match="exactly one start"):
        Maze("x", ("#####", "#..A#", "#####"), 3, ("A",), (1.0,))
    with pytest.raises(ValueError, match="appear exactly once"):
        Maze("x", ("#####", "#S.C#", "#####"), 3, ("A",), (1.0,))
    with pytest.raises(ValueError, match="sum to 1"):
        Maze("x", TINY, 3, ("A", "B"), (0.5, 0.6))
    with pytest.raises(ValueError, match="unknown maze"):
        maze("nope")


# --------------------------------------------------------------------------- exact evaluation
def exact_success_by_paths(mz: Maze, logits: torch.Tensor) -> list[float]:
    """P(reach goal t within the horizon) by recursion over action prefixes (a prefix ends at the goal)."""
    pi = torch.softmax(logits[0], -1).tolist()
    res = []
    for goal in mz.goal_cells:
        def walk(state: int, steps_left: int, goal: int = goal) -> float:
            if steps_left == 0:
                return 0.0
            acc = 0.0
            for a in range(4):
                nxt = int(mz.next_cell[state, a])
                acc += pi[state][a] * (1.0 if nxt == goal else walk(nxt, steps_left - 1, goal))
            return acc
        res.append(walk(mz.start, mz.horizon))
    return res


@pytest.mark.parametrize("horizon", [1, 2, 3, 5])
def test_success_probs_match_path_enumeration(horizon):
    mz = tiny(horizon)
    th = torch.randn((1, mz.n_cells, 4), generator=torch.Generator().manual_seed(horizon), dtype=torch.float64)
    got = mz.success_probs(th)[0].tolist()
    np.testing.assert_allclose(got, exact_success_by_paths(mz, th), rtol=0, atol=1e-14)
    ks = [1, 3, 8]
    p = torch.tensor(got, dtype=torch.float64)
    want = [float((torch.tensor(mz.weights, dtype=torch.float64) * (1 - (1 - p) ** k)).sum()) for k in ks]
    np.testing.assert_allclose(mz.pass_at_k(th, ks)[0].tolist(), want, atol=1e-15)


def test_rollouts_estimate_the_exact_success_probability():
    mz = maze("two_goals")
    th = torch.randn((1, mz.n_cells, 4), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    n = 20_000
    gen = torch.Generator().manual_seed(1)
    u = torch.rand((1, 2, n, mz.horizon), generator=gen, dtype=torch.float64)
    tasks = torch.tensor([0, 1]).view(1, 2, 1).expand(1, 2, n)
    ro = mz.rollout(th, tasks, u)
    p = mz.success_probs(th)[0]
    for t in range(2):
        se = math.sqrt(float(p[t] * (1 - p[t])) / n)
        assert abs(float(ro.rewards[0, t].mean()) - float(p[t])) < 4 * se + 1e-12


# --------------------------------------------------------------------------- policy gradient
def test_policy_gradient_matches_autograd():
    mz = maze("two_goals")
    th = torch.randn((2, mz.n_cells, 4), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    u = torch.rand((2, 3, 5, mz.horizon), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    tasks = torch.randint(0, 2, (2, 3, 5), generator=torch.Generator().manual_seed(4))
    ro = mz.rollout(th, tasks, u)
    adv = torch.randn((2, 3, 5), generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    theta = th.clone().requires_grad_()
    logp = torch.log_softmax(theta, -1)
    run = torch.arange(2).view(2, 1, 1, 1).expand_as(ro.states)
    lp = logp[run, ro.states, ro.actions]
    obj = (adv.unsqueeze(-1) * lp * ro.alive).sum()
    (auto,) = torch.autograd.grad(obj, theta)
    np.testing.assert_allclose(mz.policy_gradient(th, ro, adv).numpy(), auto.numpy(), rtol=0, atol=1e-12)


def test_reinforce_is_unbiased_by_enumeration():
    # E[R * sum_t grad log pi(a_t|s_t)] = grad P(success), exactly, over all action sequences
    mz = tiny(horizon=3)
    th = torch.randn((1, mz.n_cells, 4), generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    pi = torch.softmax(th[0], -1)
    cum = torch.cumsum(pi, -1)
    seqs = list(itertools.product(range(4), repeat=mz.horizon))
    # uniforms that select each sequence: midpoint of the chosen action's interval in the visited cell
    u = torch.empty((1, 1, len(seqs), mz.horizon), dtype=torch.float64)
    probs = torch.empty(len(seqs), dtype=torch.float64)
    for n, seq in enumerate(seqs):
        state, prob = mz.start, 1.0
        for t, a in enumerate(seq):
            lo = 0.0 if a == 0 else float(cum[state, a - 1])
            u[0, 0, n, t] = (lo + float(cum[state, a])) / 2
            prob *= float(pi[state, a])
            state = int(mz.next_cell[state, a])
        probs[n] = prob
    for task in (0, 1):
        ro = mz.rollout(th, torch.full((1, 1, len(seqs)), task), u)
        taken = ro.alive[0, 0]
        assert torch.equal(ro.actions[0, 0][taken], torch.tensor(seqs)[taken])
        # each sequence is weighted by its probability; steps after the goal are not taken,
        # so prefixes that end at the goal are counted with total probability of their continuations
        g = mz.policy_gradient(th, ro, (probs * ro.rewards[0, 0]).view(1, 1, -1))
        theta = th.clone().requires_grad_()
        (want,) = torch.autograd.grad(mz.success_probs(theta)[0, task], theta)
        np.testing.assert_allclose(g.numpy(), want.numpy(), rtol=0, atol=1e-13)


# --------------------------------------------------------------------------- training
def test_training_is_deterministic_and_independent_of_the_batch():
    mz = maze("two_goals")
    cfg = TrainConfig(steps=25, eval_every=5, groups=4, group_size=8)
    alone = train(mz, [Run("maxpo", 4, 1)], cfg)
    batch = train(mz, [Run("grpo", 1, 0), Run("maxpo", 4, 1), Run("pkpo_loo1", 4, 1)], cfg)
    assert alone.eval_steps == [0, 5, 10, 15, 20, 25]
    np.testing.assert_allclose(alone.curves[0].numpy(), batch.curves[1].numpy(), rtol=0, atol=1e-12)
    again = train(mz, [Run("maxpo", 4, 1)], cfg)
    assert torch.equal(again.curves, alone.curves)
    # the first evaluation is the uniform policy
    np.testing.assert_allclose(alone.task_success[0, 0].numpy(), mz.success_probs(mz.initial_logits(1))[0].numpy())


def test_canonical_and_maxpo_train_alike_with_normalised_sgd():
    mz = maze("far_goal")
    cfg = TrainConfig(steps=30, eval_every=10, optimizer="sgd_normalized", lr=0.5)
    res = train(mz, [Run("maxpo", 4, 0), Run("canonical", 4, 0)], cfg)
    assert float(res.curves[0, -1, 0]) > float(res.curves[0, 0, 0]) + 0.01  # it learned something
    np.testing.assert_allclose(res.curves[0].numpy(), res.curves[1].numpy(), atol=1e-9)


def test_training_rejects_bad_runs():
    mz = maze("far_goal")
    with pytest.raises(ValueError, match="maxpo"):
        train(mz, [Run("maxpo", 16, 0)], TrainConfig(group_size=16))
    with pytest.raises(ValueError, match="unknown method"):
        train(mz, [Run("nope", 2, 0)])
    with pytest.raises(ValueError, match="optimizer"):
        train(mz, [Run("maxpo", 2, 0)], TrainConfig(optimizer="rmsprop"))


def test_mazes_are_hard_to_explore():
    for name in MAZES:
        mz = maze(name)
        p0 = mz.success_probs(mz.initial_logits(1))[0]
        assert float(p0.min()) < 5e-3, name  # a random walk rarely reaches the far goal


def test_quick_maze_study():
    cfg = ms.quick_config(methods=("maxpo", "grpo"), k_sweep=(1, 4), seeds=2,
                          train=TrainConfig(steps=60, eval_every=20))
    res = ms.run_maze_study(cfg, progress=False)
    assert set(res["experiments"]) == {"comparison", "k_sweep", "control"}
    comp = res["experiments"]["comparison"]
    assert comp["eval_steps"] == [0, 20, 40, 60]
    assert set(comp["summary"]) == {"maxpo", "grpo"}
    s = comp["summary"]["maxpo"]["pass@8"]
    assert len(s["final"]) == 2 and all(lo <= m + 1e-12 and m <= hi + 1e-12
                                        for lo, m, hi in zip(s["lo"], s["mean"], s["hi"]))
    assert comp["summary"]["grpo"]["k"] == 1
    assert set(res["experiments"]["k_sweep"]["summary"]) == {"1", "4"}
    for exp in res["experiments"].values():
        for entry in exp["summary"].values():
            for key, val in entry.items():
                if key.startswith("pass@") or key.startswith("task"):
                    assert all(-1e-12 <= v <= 1 + 1e-12 for v in val["mean"])


def test_occupancy_is_the_expected_episode_length():
    mz = maze("two_goals")
    th = torch.zeros((1, mz.n_cells, 4), dtype=torch.float64)
    th[..., 1] += 0.7
    n = 20_000
    u = torch.rand((1, 2, n, mz.horizon), generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    ro = mz.rollout(th, torch.tensor([0, 1]).view(1, 2, 1).expand(1, 2, n), u)
    w = torch.tensor(mz.weights, dtype=torch.float64)
    mean_len = float((ro.lengths[0].double().mean(-1) * w).sum())
    occ = mz.occupancy(th)[0]
    assert float(occ.sum()) == pytest.approx(mean_len, rel=0.01)
    assert float(occ[mz.start]) >= 1.0  # every episode starts there
    # the uniform policy, horizon 1: one step spent at the start, nothing elsewhere
    one = tiny(horizon=1)
    occ1 = one.occupancy(one.initial_logits(1))[0]
    assert occ1[one.start] == 1.0 and float(occ1.sum()) == 1.0


def test_rounding_divergence_helper():
    div = ms.rounding_divergence(steps=20, every=10)
    assert [s for s, _ in div] == [0, 10, 20] and div[0][1] == 0.0 and div[-1][1] < 1e-6
