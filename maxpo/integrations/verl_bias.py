r"""verl's bootstrap ``best@k`` next to the unbiased pass@k, on a simulated validation set.

verl's validation metrics (``verl.trainer.ppo.metric_utils.process_validation_metrics``,
verl 0.9.1) report, for each prompt with ``n`` samples and each ``k`` in
``2, 4, 8, ..., n``, ``best@k/mean``: the mean over
:data:`VERL_BOOTSTRAP_DRAWS` draws of the best of ``k`` samples taken *with
replacement* from the prompt's ``n`` samples, averaged over prompts. For 0/1
rewards with ``c`` correct that is, as the number of draws grows,

.. math:: 1 - \left(\frac{n - c}{n}\right)^k,

the pass@k of the empirical distribution (:func:`bootstrap_limit`), not an
estimate of the policy's pass@k: the same sample is drawn again instead of a
fresh one, so the bootstrap reads low. One correct of four gives
:math:`1 - (3/4)^4 \approx 0.684` at ``k = 4`` where the unbiased estimate
:math:`1 - \binom{n-c}{k}/\binom{n}{k}` is 1.

:func:`bias_study` draws ``n`` samples for each prompt from its success
probability, calls verl's own ``process_validation_metrics`` on them and the
package's unbiased estimator (:func:`maxpo.integrations.evaluation.at_k_metrics`),
and sets both next to the exact pass@k of the simulated prompts,
:math:`1 - \frac1P \sum_i (1 - p_i)^k`, and to the exact expectation of the
bootstrap (:func:`bootstrap_expectation`). :func:`bias_figure` draws it.

verl seeds numpy's global generator with the same seed (42) for every prompt,
so all prompts with ``n`` samples use the same bootstrap indices; the bootstrap
noise of the average over prompts is then at most the average of the prompts'
noise, which :func:`bootstrap_tolerance` turns into a bound. The global
generator's state is restored after verl's call.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go

from maxpo.figures import viz
from maxpo.integrations.evaluation import at_k_metrics

__all__ = ["VERL_BOOTSTRAP_DRAWS", "BiasStudy", "bias_figure", "bias_study", "bootstrap_expectation",
           "bootstrap_limit", "bootstrap_tolerance", "exact_pass_at_k", "simulate_validation", "verl_best_at_k"]

#: Bootstrap draws per prompt and k in verl 0.9.1's ``process_validation_metrics`` (``n_bootstrap``).
VERL_BOOTSTRAP_DRAWS = 1000


def simulate_validation(p: Any, n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """``n`` pass/fail samples for each prompt of success probability ``p[i]``.

    Returns the ``uid`` of each sample (``"prompt-<i>"``, the ``n`` samples of a
    prompt adjacent, as verl's validation lays them out) and the 0/1 rewards,
    shape ``(len(p) * n,)``, drawn with ``numpy.random.default_rng(seed)``.
    """
    probs = _probabilities(p)
    if n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    rng = np.random.default_rng(seed)
    rewards = (rng.random((len(probs), n)) < probs[:, None]).astype(np.float64).reshape(-1)
    uids = [f"prompt-{i}" for i in range(len(probs)) for _ in range(n)]
    return uids, rewards


def verl_best_at_k(uids: Any, rewards: Any) -> dict[int, float]:
    """verl's validation ``best@k/mean`` of ``reward`` for every k it reports, from its own function.

    Calls ``verl.trainer.ppo.metric_utils.process_validation_metrics`` (one data
    source) as verl's trainer does, and restores numpy's global random state,
    which that function reseeds.
    """
    from verl.trainer.ppo.metric_utils import process_validation_metrics

    uid_list = list(uids)
    values = np.asarray(rewards, dtype=np.float64).reshape(-1).tolist()
    if len(values) != len(uid_list):
        raise ValueError(f"one reward per uid: got {len(values)} rewards and {len(uid_list)} uids")
    state = np.random.get_state()
    try:
        metrics = process_validation_metrics(["sim"] * len(uid_list), uid_list, {"reward": values})
    finally:
        np.random.set_state(state)
    out = {}
    for name, value in metrics["sim"]["reward"].items():
        if name.startswith("best@") and name.endswith("/mean"):
            out[int(name[len("best@"):-len("/mean")])] = float(value)
    return dict(sorted(out.items()))


def exact_pass_at_k(p: Any, k: int) -> float:
    r"""The pass@k of the prompts: :math:`1 - \frac1P \sum_i (1 - p_i)^k`."""
    probs = _probabilities(p)
    return float(1.0 - np.mean((1.0 - probs) ** k))


def bootstrap_limit(correct: Any, n: int, k: int) -> float:
    r"""What verl's ``best@k`` tends to with unlimited draws, given ``correct[i]`` of ``n`` per prompt.

    :math:`\frac1P \sum_i 1 - ((n - c_i)/n)^k`: the chance that ``k`` draws with
    replacement hit a correct sample, averaged over prompts.
    """
    c = np.asarray(correct, dtype=np.float64)
    return float(np.mean(1.0 - ((n - c) / n) ** k))


def bootstrap_expectation(p: Any, n: int, k: int) -> float:
    r"""The expectation of :func:`bootstrap_limit` over the sampling: :math:`1 - \frac1P\sum_i E[(1 - C_i/n)^k]`.

    :math:`C_i \sim \mathrm{Binomial}(n, p_i)`, summed exactly over its ``n + 1`` values.
    This is what verl's ``best@k`` reads on average; the unbiased estimate's
    expectation is :func:`exact_pass_at_k`.
    """
    probs = _probabilities(p)
    c = np.arange(n + 1)
    pmf = np.array([[math.comb(n, j) * q ** j * (1 - q) ** (n - j) for j in c] for q in probs])
    return float(1.0 - np.mean(pmf @ ((1.0 - c / n) ** k)))


def bootstrap_tolerance(correct: Any, n: int, k: int, draws: int = VERL_BOOTSTRAP_DRAWS, z: float = 4.0) -> float:
    r"""``z`` times a bound on the standard deviation of verl's ``best@k`` around :func:`bootstrap_limit`.

    Each prompt's ``best@k`` is a mean of ``draws`` independent 0/1 draws with
    probability :math:`q_i = 1 - ((n - c_i)/n)^k`, standard deviation
    :math:`\sqrt{q_i(1 - q_i)/\text{draws}}`; the prompts share their bootstrap
    indices, so the average over prompts has at most the average of these.
    """
    c = np.asarray(correct, dtype=np.float64)
    q = 1.0 - ((n - c) / n) ** k
    return float(z * np.mean(np.sqrt(q * (1.0 - q) / draws)))


@dataclass(frozen=True)
class BiasStudy:
    """The result of :func:`bias_study`.

    ``rows``: one record per k that verl reports, with ``k``, ``exact`` (the
    prompts' pass@k), ``unbiased`` and ``se`` (the package's estimate and its
    standard error across prompts), ``verl`` (verl's ``best@k``), ``limit``
    (:func:`bootstrap_limit` of these samples), ``tolerance``
    (:func:`bootstrap_tolerance`), ``expectation`` (:func:`bootstrap_expectation`)
    and ``bias`` (``verl - exact``). ``curve``: for every k from 1 to ``n``, the
    lists ``k``, ``exact``, ``unbiased``, ``se`` and ``expectation``.
    """

    p: np.ndarray
    n: int
    correct: np.ndarray
    rows: list[dict[str, float]]
    curve: dict[str, list[float]]


def bias_study(p: Any, n: int, seed: int = 0) -> BiasStudy:
    """Simulate ``n`` samples per prompt (:func:`simulate_validation`) and compare verl's ``best@k`` with pass@k.

    Calls verl's ``process_validation_metrics`` (:func:`verl_best_at_k`) and
    :func:`maxpo.integrations.evaluation.at_k_metrics` on the same samples.
    """
    probs = _probabilities(p)
    uids, rewards = simulate_validation(probs, n, seed)
    correct = rewards.reshape(len(probs), n).sum(axis=1)
    best = verl_best_at_k(uids, rewards)
    ks = list(range(1, n + 1))
    unbiased = at_k_metrics(rewards, uids, ks, name="pass")
    curve: dict[str, list[float]] = {
        "k": [float(k) for k in ks],
        "exact": [exact_pass_at_k(probs, k) for k in ks],
        "unbiased": [unbiased[f"pass@{k}"] for k in ks],
        "se": [unbiased[f"pass@{k}/se"] for k in ks],
        "expectation": [bootstrap_expectation(probs, n, k) for k in ks],
    }
    rows = []
    for k, value in best.items():
        exact = exact_pass_at_k(probs, k)
        rows.append({"k": float(k), "exact": exact, "unbiased": unbiased[f"pass@{k}"],
                     "se": unbiased[f"pass@{k}/se"], "verl": value, "limit": bootstrap_limit(correct, n, k),
                     "tolerance": bootstrap_tolerance(correct, n, k), "expectation": bootstrap_expectation(probs, n, k),
                     "bias": value - exact})
    return BiasStudy(p=probs, n=n, correct=correct, rows=rows, curve=curve)


def bias_figure(study: BiasStudy, *, z: float = 1.96, height: int = 440) -> go.Figure:
    """pass@k against k: exact, the unbiased estimate with a ``z``-standard-error band, verl's ``best@k``
    (markers) and the bootstrap's exact expectation (dotted)."""
    c = study.curve
    ks = c["k"]
    lo = [max(u - z * s, 0.0) for u, s in zip(c["unbiased"], c["se"])]
    hi = [min(u + z * s, 1.0) for u, s in zip(c["unbiased"], c["se"])]
    color = viz.method_color("maxpo")
    fig = viz.new_figure(x_title="k", y_title="pass@k", height=height)
    fig.add_trace(go.Scatter(x=ks + ks[::-1], y=hi + lo[::-1], fill="toself", mode="lines",
                             line=dict(width=0), fillcolor=_rgba(color, 0.18), hoverinfo="skip",
                             name=f"unbiased ± {z:g} se"))
    fig.add_trace(go.Scatter(x=ks, y=c["exact"], mode="lines", name="exact pass@k of the prompts",
                             line=dict(color="black", width=6), opacity=0.25))
    fig.add_trace(go.Scatter(x=ks, y=c["unbiased"], mode="lines+markers", name="unbiased estimate (maxpo)",
                             line=dict(color=color, width=2.5), marker=dict(size=5)))
    fig.add_trace(go.Scatter(x=ks, y=c["expectation"], mode="lines", name="bootstrap, expected value",
                             line=dict(color=viz.PALETTE[1], dash="dot")))
    fig.add_trace(go.Scatter(x=[r["k"] for r in study.rows], y=[r["verl"] for r in study.rows],
                             mode="markers", name="verl best@k (bootstrap)",
                             marker=dict(color=viz.PALETTE[1], size=11, symbol="diamond")))
    ticks = sorted({1.0, *(r["k"] for r in study.rows)})
    fig.update_xaxes(type="log", tickvals=ticks, range=[-0.05, math.log10(study.n) + 0.05])
    top = max(hi + c["exact"] + [r["verl"] for r in study.rows])
    fig.update_yaxes(range=[0, min(1.0, top) * 1.05 + 0.01])
    return fig


def _probabilities(p: Any) -> np.ndarray:
    probs = np.asarray(p, dtype=np.float64).reshape(-1)
    if probs.size == 0 or not np.all((probs >= 0) & (probs <= 1)):
        raise ValueError("p must be a non-empty list of probabilities in [0, 1]")
    return probs


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"
