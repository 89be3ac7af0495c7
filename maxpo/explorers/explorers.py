"""The book's live explorers, one per theory chapter (they need a running kernel).

* :class:`EstimateExplorer` (objective) -- type rewards, choose K: the rank
  weights of the max@K estimator and the estimate for every K.
* :class:`GradientExplorer` (policy gradient) -- a categorical policy, B, K:
  the exact gradient of max@K against the expected gradient of the signal.
* :class:`AdvantageExplorer` (baselines) -- rewards, K, a method: the
  advantages and their sum.
* :class:`VarianceExplorer` (canonical) -- a categorical policy, B, K: bias,
  total variance and unified-view offset of every max@K method.
* :class:`PrecisionExplorer` (computing) -- B, K / B, a reward offset: float32
  errors of the package and of two all-float32 pipelines.

Controls are public attributes (ipywidgets); ``ui`` is the box to display.
Displaying an explorer itself (the last line of a cell) shows ``ui`` in a live
session and, in a book build, its :meth:`static_html`: the same explorer
over a precomputed grid, or (:class:`AdvantageExplorer`) with rewards the
reader drags, computed in the browser (:mod:`maxpo.explorers.static`).
"""
from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go

import maxpo
from maxpo.explorers import figures, static
from maxpo.explorers.base import Explorer, fmt
from maxpo.explorers.inputs import parse_fractions, parse_numbers
from maxpo.explorers.static import Control
from maxpo.explorers.summaries import (
    MAXK_METHODS,
    advantage_summary,
    estimate_summary,
    gradient_summary,
    precision_summary,
    variance_summary,
)

__all__ = ["AdvantageExplorer", "EstimateExplorer", "GradientExplorer", "PrecisionExplorer", "VarianceExplorer"]

_WIDE = widgets.Layout(width="32em")


def _with_start(start: str, others: Sequence[str]) -> list[str]:
    return [start, *(o for o in others if o != start)]


def _group_size(text: str) -> int:
    return max(1, len(text.replace(",", " ").split()))


class _GroupExplorer(Explorer):
    """Rewards typed in a text box and a K slider whose maximum follows the group size B."""

    def _group_controls(self, rewards: str, k: int) -> None:
        self.rewards = widgets.Text(value=rewards, description="rewards", continuous_update=False, layout=_WIDE)
        top = _group_size(rewards)
        self.k = widgets.IntSlider(value=min(k, top), min=1, max=top, description="K", continuous_update=False)

    def _read_group(self) -> list[float]:
        """The typed rewards; the K slider's maximum becomes their number B."""
        r = parse_numbers(self.rewards.value, "reward")
        if self.k.max != len(r):
            self.k.max = len(r)  # clamps k.value, which triggers a nested update first
        return r


class EstimateExplorer(_GroupExplorer):
    """Type rewards and pick K: the rank weights on the sorted rewards and the max@K estimate for every K.

    ``result`` is the dict of :func:`maxpo.explorers.summaries.estimate_summary`.
    """

    def __init__(self, rewards: str = "0.2, 0.9, 0.4, 0.4, 0.1, 0.7, 0.3, 0.6", k: int = 3) -> None:
        self._group_controls(rewards, k)
        self._start([self.rewards, self.k], [self.rewards, self.k])

    def _compute(self) -> dict[str, Any]:
        return estimate_summary(self._read_group(), self.k.value)

    def _figure(self, res: dict[str, Any]) -> go.Figure:
        return figures.estimate_figure(res, self.k.value)

    def static_html(self) -> str:
        """Four groups of rewards (the typed one first) and every K."""
        b = _group_size(self.rewards.value)
        groups = _with_start(self.rewards.value, [", ".join(["0", "1", "0", "0", "1", "0", "0", "0"][:b]),
                                                  ", ".join(["0.5"] * b), ", ".join(["0"] * (b - 1) + ["10"])])
        return static.grid_html(self, [Control("rewards", "rewards", groups, "menu"),
                                       Control("k", "K", list(range(1, b + 1)))])

    def _caption(self, res: dict[str, Any]) -> str:
        name = "pass@K" if res["binary"] else "max@K"
        return (f"<p>B = {len(res['sorted'])}: the {name} estimate at K = {self.k.value} is "
                f"<b>{fmt(res['estimate'])}</b> (mean reward {fmt(res['by_k'][0])}, best {fmt(res['by_k'][-1])})</p>")


class GradientExplorer(Explorer):
    """A categorical policy, B and K: exact ∇J_K against the signal's expected gradient, by enumeration.

    Controls: ``rewards`` and ``probs`` (Text, one value per action), ``b`` and
    ``k`` (IntSliders). ``result`` is the dict of
    :func:`maxpo.explorers.summaries.gradient_summary`.
    """

    def __init__(self, rewards: str = "0, 1/2, 1", probs: str = "1/5, 1/2, 3/10", b: int = 4, k: int = 2) -> None:
        self.rewards = widgets.Text(value=rewards, description="rewards", continuous_update=False)
        self.probs = widgets.Text(value=probs, description="probs", continuous_update=False)
        self.b = widgets.IntSlider(value=b, min=1, max=7, description="B", continuous_update=False)
        self.k = widgets.IntSlider(value=k, min=1, max=7, description="K", continuous_update=False)
        self._start([widgets.HBox([self.rewards, self.probs]), widgets.HBox([self.b, self.k])],
                    [self.rewards, self.probs, self.b, self.k])

    def static_html(self) -> str:
        """Two reward vectors (the typed one first) for the typed probabilities, every B and K up to 7."""
        rewards = _with_start(self.rewards.value, ["1, 0, 1/2"])
        return static.grid_html(self, [Control("rewards", "rewards", rewards, "menu"),
                                       Control("b", "B", list(range(1, 8))), Control("k", "K", list(range(1, 8)))])

    def _compute(self) -> dict[str, Any]:
        self._rewards = parse_fractions(self.rewards.value, "reward")
        probs = parse_fractions(self.probs.value, "probability")
        return gradient_summary(self._rewards, probs, self.b.value, self.k.value)

    def _figure(self, res: dict[str, Any]) -> go.Figure:
        return figures.gradient_figure(res, [float(r) for r in self._rewards])

    def _caption(self, res: dict[str, Any]) -> str:
        gap = max(abs(a - b) for a, b in zip(res["exact"], res["expected"]))
        return (f"<p>J<sub>{self.k.value}</sub> = {fmt(res['objective'])}; over all {res['batches']} batches "
                f"of B = {self.b.value}: largest gap |E[ĝ] − ∇J| = {fmt(gap)} (unbiased), "
                f"total variance {fmt(res['variance'])}</p>")


class AdvantageExplorer(_GroupExplorer):
    """Type rewards, pick K and a method; see the advantages, their sum and variance.

    Controls: ``rewards`` (Text), ``k`` (IntSlider, its maximum follows B),
    ``method`` (Dropdown over :data:`maxpo.METHODS`). ``result`` is the dict of
    :func:`maxpo.explorers.summaries.advantage_summary`.
    """

    def __init__(self, rewards: str = "0.1, 0.3, 0.5, 0.7, 0.9", k: int = 2, method: str = "maxpo") -> None:
        self._group_controls(rewards, k)
        self.method = widgets.Dropdown(options=list(maxpo.METHODS), value=method, description="method")
        self._start([self.rewards, widgets.HBox([self.k, self.method])], [self.rewards, self.k, self.method])

    def static_html(self) -> str:
        """One slider per reward (0 to 1 by 0.05), K and the methods linear in the sorted rewards."""
        return static.linear_html(parse_numbers(self.rewards.value, "reward"), self.k.value, self.method.value)

    def _compute(self) -> dict[str, Any]:
        self._rewards = self._read_group()
        return advantage_summary(self._rewards, self.k.value, self.method.value)

    def _figure(self, res: dict[str, Any]) -> go.Figure:
        return figures.advantage_figure(res, self._rewards, self.method.value)

    def _caption(self, res: dict[str, Any]) -> str:
        if res["centred"]:
            total = f"<b>0</b> up to float64 rounding ({fmt(res['sum'])}): centred"
        else:
            total = f"<b>{fmt(res['sum'])}</b>: not centred"
        return (f"<p>sum of advantages {total}; mean {fmt(res['mean'])}; "
                f"variance across the group {fmt(res['variance'])}; max@K estimate {fmt(res['rho_hat'])}</p>")


class VarianceExplorer(Explorer):
    """A categorical policy, B and K: exact bias, gradient variance and offset of each max@K method.

    Controls: ``rewards`` and ``probs`` (Text, one value per action), ``b`` and
    ``k`` (IntSliders), ``methods`` (SelectMultiple). ``result`` is the dict of
    :func:`maxpo.explorers.summaries.variance_summary`.
    """

    def __init__(self, rewards: str = "0, 0.5, 1", probs: str = "1/2, 1/3, 1/6", b: int = 5, k: int = 2,
                 methods: Sequence[str] = MAXK_METHODS) -> None:
        self.rewards = widgets.Text(value=rewards, description="rewards", continuous_update=False)
        self.probs = widgets.Text(value=probs, description="probs", continuous_update=False)
        self.b = widgets.IntSlider(value=b, min=2, max=6, description="B", continuous_update=False)
        self.k = widgets.IntSlider(value=k, min=1, max=6, description="K", continuous_update=False)
        self.methods = widgets.SelectMultiple(options=list(MAXK_METHODS), value=tuple(methods),
                                              description="methods", rows=len(MAXK_METHODS))
        self._start([widgets.HBox([self.rewards, self.probs]), widgets.HBox([self.b, self.k]), self.methods],
                    [self.rewards, self.probs, self.b, self.k, self.methods])

    def static_html(self) -> str:
        """Two reward vectors (the typed one first) for the typed probabilities, every B and K up to 6."""
        rewards = _with_start(self.rewards.value, ["0, 0, 1"])
        return static.grid_html(self, [Control("rewards", "rewards", rewards, "menu"),
                                       Control("b", "B", list(range(2, 7))), Control("k", "K", list(range(1, 7)))])

    def _compute(self) -> dict[str, dict[str, float]]:
        r = parse_fractions(self.rewards.value, "reward")
        p = parse_fractions(self.probs.value, "probability")
        result = variance_summary(r, p, self.b.value, self.k.value, self.methods.value)
        if not result:
            raise ValueError(f"none of the chosen methods is defined at B = {self.b.value}, K = {self.k.value}")
        return result

    def _figure(self, result: dict[str, dict[str, float]]) -> go.Figure:
        return figures.variance_figure(result)

    def _caption(self, result: dict[str, dict[str, float]]) -> str:
        bias = max(v["bias"] for v in result.values())
        skipped = [m for m in self.methods.value if m not in result]
        note = (f"; not defined at B = {self.b.value}, K = {self.k.value}: {html.escape(', '.join(skipped))}"
                if skipped else "")
        return f"<p>largest bias |E ĝ − λ∇J<sub>K</sub>| over the methods: {fmt(bias)}{note}</p>"


class PrecisionExplorer(Explorer):
    """B (as a power of two), K as a fraction of B, and a reward offset: float32 errors of three pipelines."""

    def __init__(self, log2_b: int = 10, k_fraction: float = 0.25, offset: float = 0.0) -> None:
        self.log2_b = widgets.IntSlider(value=log2_b, min=3, max=14, description="log2 B", continuous_update=False)
        self.k_fraction = widgets.FloatSlider(value=k_fraction, min=0.0, max=0.9, step=0.05, description="K / B",
                                              continuous_update=False)
        self.offset = widgets.FloatLogSlider(value=max(offset, 1e-3), base=10, min=-3, max=4,
                                             description="offset", continuous_update=False)
        self._start([widgets.HBox([self.log2_b, self.k_fraction, self.offset])],
                    [self.log2_b, self.k_fraction, self.offset])

    def static_html(self) -> str:
        """Every B = 2^3..2^14, four K / B and five offsets (the current values among them)."""
        fractions = sorted({0.05, 0.25, 0.5, 0.9, self.k_fraction.value})
        offsets = sorted({0.001, 1.0, 100.0, 1000.0, 10000.0, self.offset.value})
        return static.grid_html(self, [Control("log2_b", "log2 B", list(range(3, 15))),
                                       Control("k_fraction", "K / B", fractions, labels=[f"{f:g}" for f in fractions]),
                                       Control("offset", "offset", offsets, labels=[f"{o:g}" for o in offsets])])

    @property
    def b(self) -> int:
        return 2 ** self.log2_b.value

    @property
    def k_value(self) -> int:
        return min(self.b - 1, max(1, math.floor(self.k_fraction.value * self.b)))

    def _compute(self) -> dict[str, dict[str, float]]:
        return precision_summary(self.b, self.k_value, self.offset.value, groups=max(1, 2 ** 14 // self.b))

    def _figure(self, result: dict[str, dict[str, float]]) -> go.Figure:
        return figures.precision_figure(result, self.b, self.k_value)

    def _caption(self, result: dict[str, dict[str, float]]) -> str:
        pkg = result["package"]
        return (f"<p>B = {self.b}, K = {self.k_value}, rewards uniform on [offset, offset + 1]: the package's "
                f"relative error {fmt(pkg['relative_error'])}, centring error {fmt(pkg['centering_error'])}</p>")
