"""Figures and tables of lab results for the book (needs plotly; the lab itself does not).

The input is the JSON that :func:`maxpo.lab.compare.compare` writes, or the
records of one run's ``metrics.jsonl``.
"""
from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from maxpo.figures import viz

__all__ = ["seed_band_figure", "run_curves_figure", "summary_rows", "summary_html", "cost_html", "passk_curve_figure",
           "grad_norm_figure", "differences_html", "gradvar_html"]


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


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = ["<table class='table'>",
           "<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead>",
           "<tbody>"]
    out += ["<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows]
    out += ["</tbody>", "</table>"]
    return "\n".join(out)


def summary_html(result: dict[str, Any], metrics: Sequence[str]) -> str:
    """Final metrics per method as an HTML table (mean ± standard deviation across seeds); narrow by design."""
    rows = [[html.escape(r["method"])] + [f"{r[m][0]:.3f} ± {r[m][1]:.3f}" for m in metrics]
            for r in summary_rows(result, metrics)]
    return _table(["method", *metrics], rows)


def cost_html(result: dict[str, Any]) -> str:
    """Throughput and the share of the step spent on advantages, per method, as an HTML table."""
    rows = [[html.escape(r["method"]), f"{r['samples_per_s']:,.0f}", f"{r['step_ms']:.0f}",
             f"{100 * r['adv_share']:.2f}%"]
            for r in summary_rows(result, [])]
    return _table(["method", "answers/s", "ms/step", "advantages"], rows)


def passk_curve_figure(result: dict[str, Any], height: int = 420) -> go.Figure:
    """Held-out pass@k against k (log scale) at the end of RL, mean over seeds, and the warm start's."""
    curves = result["passk_curves"]
    fig = viz.new_figure(x_title="k (answers per puzzle)", y_title="held-out pass@k", height=height)
    fig.update_xaxes(type="log", tickvals=curves["k"], ticktext=[str(k) for k in curves["k"]])
    fig.add_trace(go.Scatter(x=curves["k"], y=curves["warm start"], mode="lines+markers", name="warm start",
                             line=dict(color="#888888", dash="dash")))
    for method in result["methods"]:
        if method in curves:
            fig.add_trace(go.Scatter(x=curves["k"], y=curves[method], mode="lines+markers",
                                     name=_label(method, result["k"]),
                                     line=dict(color=viz.method_color(method), width=2)))
    return fig


def grad_norm_figure(result: dict[str, Any], height: int = 380) -> go.Figure:
    """Gradient norm (before any clipping) against the RL step: median over seeds per method, log scale."""
    fig = viz.new_figure(x_title="RL step", y_title="gradient norm", height=height)
    fig.update_yaxes(type="log")
    for method in result["methods"]:
        runs = [r for r in result["runs"] if r["method"] == method]
        vals = np.median(np.array([r["train"]["grad_norm"] for r in runs], dtype=float), axis=0)
        fig.add_trace(go.Scatter(x=runs[0]["train"]["step"], y=vals, mode="lines", name=_label(method, result["k"]),
                                 line=dict(color=viz.method_color(method), width=1.5)))
    return fig


def differences_html(result: dict[str, Any], metric: str) -> str:
    """Paired bootstrap intervals of the final ``metric`` differences (method a minus b), one row each."""
    rows = []
    for d in result["differences"]:
        if d["metric"] != metric:
            continue
        b = d["b"] if d["b"] == "warm start" else viz.method_label(d["b"])
        rows.append([f"{html.escape(viz.method_label(d['a']))} − {html.escape(b)}",
                     f"{d['diff']:+.3f}", f"[{d['lo']:+.3f}, {d['hi']:+.3f}]"])
    level = int(round(100 * result["differences"][0]["level"])) if result["differences"] else 95
    return _table(["difference", metric, f"{level}% interval"], rows)


def gradvar_html(result: dict[str, Any], checkpoint: str) -> str:
    """Gradient variance at one checkpoint: relative variance and cosine to the mean gradient, per method."""
    g = result["gradient_variance"][checkpoint]
    rows = [[html.escape(_label(m, g["k"])), f"{v['relative_variance']:.2f}", f"{v['cosine_to_mean']:.3f}"]
            for m, v in g["methods"].items()]
    return _table(["method", "variance / |mean|²", "cosine to mean"], rows)
