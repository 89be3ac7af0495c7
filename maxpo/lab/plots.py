"""Figures and tables of lab results for the book (needs plotly; the lab itself does not).

The input is the JSON that :func:`maxpo.lab.compare.compare` writes, or the
records of one run's ``metrics.jsonl``.
"""
from __future__ import annotations

import html
from typing import Any, Sequence

import numpy as np
import plotly.graph_objects as go

from maxpo import viz

__all__ = ["seed_band_figure", "run_curves_figure", "summary_rows", "summary_html"]


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def _label(method: str, k: int) -> str:
    base = viz.method_label(method)
    return base if method in ("grpo", "dr_grpo", "rloo") else f"{base}, K = {k}"


def seed_band_figure(result: dict[str, Any], metric: str, y_title: str | None = None, height: int = 420) -> go.Figure:
    """Held-out ``metric`` against the RL step: mean over seeds (line) and min-max over seeds (band), per method."""
    fig = viz.new_figure(x_title="RL step", y_title=y_title or f"held-out {metric}", height=height)
    for method in result["methods"]:
        runs = [r for r in result["runs"] if r["method"] == method]
        steps = [e["step"] for e in runs[0]["eval"]]
        vals = np.array([[e[metric] for e in r["eval"]] for r in runs])
        color = viz.method_color(method)
        fig.add_trace(go.Scatter(
            x=steps + steps[::-1], y=list(vals.max(0)) + list(vals.min(0)[::-1]), fill="toself",
            fillcolor=_rgba(color, 0.15), line=dict(width=0), hoverinfo="skip", showlegend=False, legendgroup=method,
        ))
        fig.add_trace(go.Scatter(
            x=steps, y=vals.mean(0), mode="lines+markers", name=_label(method, result["k"]), legendgroup=method,
            line=dict(color=color, width=2), marker=dict(size=5),
            hovertemplate="step %{x}<br>mean %{y:.3f}<extra>" + viz.method_label(method) + "</extra>",
        ))
    return fig


def run_curves_figure(records: Sequence[dict[str, Any]], metrics: Sequence[str], height: int = 380) -> go.Figure:
    """Held-out metrics of one run (its ``eval`` records) against the RL step."""
    evals = [r for r in records if r.get("kind") == "eval"]
    fig = viz.new_figure(x_title="RL step", y_title="held-out value", height=height)
    for color, m in zip(viz.PALETTE, metrics):
        fig.add_trace(go.Scatter(x=[e["step"] for e in evals], y=[e[m] for e in evals], mode="lines+markers",
                                 name=m, line=dict(color=color)))
    return fig


def summary_rows(result: dict[str, Any], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """One row per method: final metrics (mean, std over seeds), throughput, advantage share."""
    rows = []
    for method in result["methods"]:
        s = result["summary"][method]
        row: dict[str, Any] = {"method": _label(method, result["k"]), "seeds": len(s["seeds"])}
        for m in metrics:
            row[m] = (s["final"][m]["mean"], s["final"][m]["std"])
        row.update(samples_per_s=s["samples_per_s"], tokens_per_s=s["tokens_per_s"], step_ms=1e3 * s["step_seconds"],
                   adv_share=s["share"]["adv"])
        rows.append(row)
    return rows


def summary_html(result: dict[str, Any], metrics: Sequence[str]) -> str:
    """:func:`summary_rows` as an HTML table (mean ± standard deviation across seeds)."""
    head = ["method", "seeds", *[f"final {m}" for m in metrics], "answers/s", "tokens/s", "ms/step", "advantages (share of step)"]
    out = ["<table class='table'>", "<thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead>", "<tbody>"]
    for row in summary_rows(result, metrics):
        cells = [html.escape(row["method"]), str(row["seeds"])]
        cells += [f"{row[m][0]:.3f} ± {row[m][1]:.3f}" for m in metrics]
        cells += [f"{row['samples_per_s']:,.0f}", f"{row['tokens_per_s']:,.0f}", f"{row['step_ms']:.0f}",
                  f"{100 * row['adv_share']:.2f}%"]
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    out += ["</tbody>", "</table>"]
    return "\n".join(out)
