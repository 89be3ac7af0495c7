"""Plotly figures of the explorers' summaries (pure: a summary in, a ``go.Figure`` out).

Each function takes the dict of the matching function in
:mod:`maxpo.explorers.summaries` and draws it in the book's style
(:mod:`maxpo.figures.viz`: template, one colour per method).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from maxpo.figures import viz

__all__ = ["advantage_figure", "estimate_figure", "gradient_figure", "narrow_layout", "precision_figure",
           "variance_figure"]

HEIGHT = 400
#: Values at or below this are drawn at this height on a log axis (plotly cannot draw 0 there).
LOG_FLOOR = 1e-18


#: A two-panel figure narrower than this many pixels is drawn with its panels stacked (:func:`narrow_layout`).
NARROW_BELOW = 560
#: Share of the stacked figure's plot height between the two panels (the upper panel's axis title, the lower
#: panel's title).
STACK_GAP = 0.2


def narrow_layout(height: int) -> dict[str, Any]:
    """How a two-panel figure of ``height`` px is stacked on a narrow screen, stored in its ``layout.meta``.

    ``{"below": px, "height": px, "set": {path: value}}``: where the figure is
    narrower than ``below`` px, the static book's page script
    (:mod:`maxpo.explorers.static`) sets each plotly layout path to its value
    and the figure to the given height: both panels span the full width, one
    above the other, each with its title centred above it. Side by side at
    390 px each panel would be about 130 px wide and its title would run into
    the other's.
    """
    lower_top = (1 - STACK_GAP) / 2
    return {"below": NARROW_BELOW, "height": 2 * height - 80, "set": {
        "xaxis.domain": [0, 1], "xaxis2.domain": [0, 1],
        "yaxis.domain": [1 - lower_top, 1], "yaxis2.domain": [0, lower_top],
        "annotations[0].x": 0.5, "annotations[1].x": 0.5, "annotations[1].y": lower_top,
    }}


def _two_panels(left: str, right: str, height: int = HEIGHT) -> go.Figure:
    """Two panels side by side, titled ``left`` and ``right``; stacked on a narrow screen (:func:`narrow_layout`).

    Keep the titles short (about 25 characters): side by side, each has about
    half of a 688 px text column.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=(left, right), horizontal_spacing=0.12)
    fig.update_layout(height=height, margin=dict(t=60), meta={"mx_narrow": narrow_layout(height)})
    return fig


def estimate_figure(summary: Mapping[str, Any], k: int) -> go.Figure:
    """Left: rank weights on the sorted rewards. Right: the estimate for every K, the chosen K marked."""
    name = "pass@K" if summary["binary"] else "max@K"
    fig = _two_panels(f"rank weights, K = {k}", f"{name} estimate by K")
    b = len(summary["sorted"])
    ranks = list(range(1, b + 1))
    fig.add_trace(go.Bar(x=ranks, y=summary["weights"], marker_color=viz.PALETTE[0], name="weight w<sub>i</sub>",
                         customdata=summary["sorted"],
                         hovertemplate="rank %{x}, reward %{customdata:.4g}<br>weight %{y:.4g}<extra></extra>"),
                  row=1, col=1)
    ks = list(range(1, b + 1))
    fig.add_trace(go.Scatter(x=ks, y=summary["by_k"], mode="lines+markers", name=f"{name} estimate",
                             line=dict(color=viz.PALETTE[1])), row=1, col=2)
    fig.add_trace(go.Scatter(x=[k], y=[summary["estimate"]], mode="markers", name=f"K = {k}",
                             marker=dict(size=14, color=viz.PALETTE[3], symbol="diamond")), row=1, col=2)
    fig.update_xaxes(title_text="rank of the reward (1 = worst)", row=1, col=1)
    fig.update_yaxes(title_text="w<sub>i</sub>", rangemode="tozero", row=1, col=1)
    fig.update_xaxes(title_text="K", row=1, col=2)
    fig.update_yaxes(title_text=f"{name} estimate ρ̂", row=1, col=2)
    fig.update_layout(showlegend=False)
    return fig


def gradient_figure(summary: Mapping[str, Any], rewards: Sequence[float]) -> go.Figure:
    """Left: exact ∇J_K against the signal's expected gradient, per logit. Right: mean signal per action."""
    fig = _two_panels("gradient per logit", "mean signal E[s | action]")
    actions = [f"a{i + 1} (r = {r:.3g})" for i, r in enumerate(rewards)]
    fig.add_trace(go.Bar(x=actions, y=summary["exact"], name="exact ∇J<sub>K</sub>", marker_color=viz.PALETTE[5]),
                  row=1, col=1)
    fig.add_trace(go.Bar(x=actions, y=summary["expected"], name="E[ĝ] with the signal",
                         marker_color=viz.method_color("pkpo_s")), row=1, col=1)
    fig.add_trace(go.Bar(x=actions, y=summary["mean_signal"], name="E[s | action]", showlegend=False,
                         marker_color=viz.method_color("pkpo_s")), row=1, col=2)
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=-0.2, x=0))
    return fig


def advantage_figure(summary: Mapping[str, Any], rewards: Sequence[float], method: str) -> go.Figure:
    """The advantage of each sample (in the order typed), coloured by method, with the group's sum in the title.

    A sum that is zero up to float64 rounding (``summary["centred"]``) is shown as 0.
    """
    samples = [f"{i + 1}: r = {r:.3g}" for i, r in enumerate(rewards)]
    total = "0 (centred)" if summary["centred"] else f"{summary['sum']:.4g}"
    fig = viz.new_figure(title=f"{viz.method_label(method)}: Σ A<sub>i</sub> = {total}",
                         x_title="sample (reward)", y_title="advantage A<sub>i</sub>", height=HEIGHT)
    fig.add_trace(go.Bar(x=samples, y=summary["advantages"], marker_color=viz.method_color(method),
                         name=viz.method_label(method)))
    fig.add_hline(y=0, line=dict(color="#555", width=1))
    fig.update_xaxes(type="category")
    return fig


def variance_figure(summary: Mapping[str, Mapping[str, float]]) -> go.Figure:
    """Left: total variance of each method's gradient estimate. Right: its offset δ in the unified view."""
    fig = _two_panels("total variance tr Var ĝ", "offset δ (0: centred)", height=480)
    names = list(summary)
    colors = [viz.method_color(n) for n in names]
    labels = [viz.method_label(n) for n in names]
    fig.add_trace(go.Bar(x=labels, y=[summary[n]["variance"] for n in names], marker_color=colors), row=1, col=1)
    fig.add_trace(go.Bar(x=labels, y=[summary[n]["offset"] for n in names], marker_color=colors), row=1, col=2)
    # the method names under the bars turn on a phone and need room below: a taller figure keeps the bars' share
    fig.update_layout(showlegend=False)
    return fig


def precision_figure(summary: Mapping[str, Mapping[str, float]], b: int, k: int) -> go.Figure:
    """Relative error and centring error of each float32 pipeline, on a log axis (floored at :data:`LOG_FLOOR`)."""
    names = list(summary)
    fig = viz.new_figure(title=f"float32 errors at B = {b}, K = {k}", y_title="error (log scale)", height=HEIGHT)
    for key, label, color in (("relative_error", "relative error", viz.PALETTE[0]),
                              ("centering_error", "|ΣA| / Σ|A|", viz.PALETTE[1])):
        values = [summary[n][key] for n in names]
        fig.add_trace(go.Bar(x=names, y=[max(v, LOG_FLOOR) for v in values], name=label, marker_color=color,
                             customdata=values, hovertemplate="%{x}: %{customdata:.3e}<extra>" + label + "</extra>"))
    fig.update_yaxes(type="log", exponentformat="power")
    fig.update_layout(barmode="group", margin=dict(t=70),
                      legend=dict(orientation="h", x=1, xanchor="right", y=1.02, yanchor="bottom"))
    return fig
