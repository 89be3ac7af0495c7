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
           "grad_norm_figure", "differences_html", "gradvar_html", "passk_differences_figure", "family_curve_figure",
           "study_html", "adaptive_html", "answers_html", "power_html", "adaptive_lambda_figure"]


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


def passk_differences_figure(pairs: dict[str, list[dict[str, Any]]], height: int = 420) -> go.Figure:
    """Paired differences of final pass@k against k, with their intervals (bands), one line per named pair.

    ``pairs[name]`` is the list of :func:`maxpo.lab.analysis.passk_differences`.
    """
    fig = viz.new_figure(x_title="k (answers per puzzle)", y_title="difference in held-out pass@k", height=height)
    for color, (name, rows) in zip(viz.PALETTE, pairs.items()):
        ks = [r["k"] for r in rows]
        fig.add_trace(go.Scatter(x=ks + ks[::-1], y=[r["hi"] for r in rows] + [r["lo"] for r in rows][::-1],
                                 fill="toself", fillcolor=_rgba(color, 0.15), line=dict(width=0), hoverinfo="skip",
                                 showlegend=False, legendgroup=name))
        fig.add_trace(go.Scatter(x=ks, y=[r["diff"] for r in rows], mode="lines+markers", name=name, legendgroup=name,
                                 line=dict(color=color, width=2),
                                 customdata=[[r["lo"], r["hi"]] for r in rows],
                                 hovertemplate="k = %{x}<br>%{y:+.3f} [%{customdata[0]:+.3f}, %{customdata[1]:+.3f}]"
                                               "<extra>" + html.escape(name) + "</extra>"))
    fig.add_hline(y=0, line=dict(color="#888888", width=1, dash="dot"))
    return fig


def family_curve_figure(study: dict[str, Any], height: int = 420) -> go.Figure:
    """Total variance of the loo-1/MaxPO family against lambda, relative to MaxPO's (lambda = 1), per measurement."""
    fig = viz.new_figure(x_title="λ (0: PKPO loo-1, 1: MaxPO)", y_title="Var(λ) / Var(MaxPO)", height=height)
    dashes: dict[Any, str] = {}
    for color, r in zip(viz.PALETTE * 4, study["results"]):
        dash = dashes.setdefault(r["prompt_seed"], ["solid", "dash", "dot"][len(dashes) % 3])
        c = r["family"]["curve"]
        fig.add_trace(go.Scatter(x=c["lambda"], y=c["var_over_var1"], mode="lines",
                                 name=f"{r['checkpoint']}, prompts {r['prompt_seed']}",
                                 line=dict(color=color, dash=dash, width=2)))
    fig.add_vline(x=1, line=dict(color="#888888", width=1, dash="dot"))
    return fig


def _ci(v: dict[str, float], fmt: str = ".2f") -> str:
    return f"{v['value']:{fmt}} [{v['lo']:{fmt}}, {v['hi']:{fmt}}]"


def study_html(study: dict[str, Any]) -> str:
    """The loo-1/MaxPO family per measurement: lambda*, and the variance of loo-1 (lambda = 0) and of lambda*
    relative to MaxPO's, with bootstrap intervals over prompts (paired: one set of resamples for all columns of
    this table and of :func:`adaptive_html`)."""
    rows = []
    for r in study["results"]:
        f = r["family"]
        rows.append([html.escape(str(r["checkpoint"])), str(r["prompt_seed"]), _ci(f["lambda_star"]),
                     _ci(f["var0_over_var1"]), _ci(f["var_star_over_var1"])])
    return _table(["weights", "prompts", "λ*", "Var(loo-1) / Var(MaxPO)", "Var(λ*) / Var(MaxPO)"], rows)


def adaptive_html(study: dict[str, Any]) -> str:
    """The adaptive lambda per measurement: its value after all repeats and its variance relative to MaxPO's and
    to the in-sample lambda*'s, with the same paired bootstrap intervals as :func:`study_html`."""
    rows = []
    for r in study["results"]:
        f, ad = r["family"], r["adaptive"]
        rows.append([html.escape(str(r["checkpoint"])), str(r["prompt_seed"]), _ci(ad["lambda_hat_final"]),
                     _ci(ad["var_adaptive_over_var1"]), f"{f['lambda_star']['value']:.2f}"])
    return _table(["weights", "prompts", "λ̂ after the last batch", "Var(adaptive) / Var(MaxPO)", "λ*"], rows)


def adaptive_lambda_figure(study: dict[str, Any], height: int = 420) -> go.Figure:
    """The adaptive lambda against the number of earlier batches it is estimated from, per measurement (lines),
    with that measurement's in-sample lambda* (a diamond after the last batch); colours as
    :func:`family_curve_figure`."""
    # traceorder "normal": grouped legends lay out one group per row, which eats the plot on a phone
    fig = viz.new_figure(x_title="batches seen (repeats before this one)", y_title="adaptive λ̂", height=height,
                         legend=dict(traceorder="normal"))
    dashes: dict[Any, str] = {}
    for color, r in zip(viz.PALETTE * 4, study["results"]):
        dash = dashes.setdefault(r["prompt_seed"], ["solid", "dash", "dot"][len(dashes) % 3])
        seq = r["adaptive"]["lambda_hat_sequence"]
        name = f"{r['checkpoint']}, prompts {r['prompt_seed']}"
        fig.add_trace(go.Scatter(x=list(range(len(seq))), y=seq, mode="lines", name=name, legendgroup=name,
                                 line=dict(color=color, dash=dash, width=2)))
        fig.add_trace(go.Scatter(x=[len(seq)], y=[r["family"]["lambda_star"]["value"]], mode="markers",
                                 name=f"λ*, {name}", legendgroup=name, showlegend=False,
                                 marker=dict(color=color, symbol="diamond", size=9)))
    return fig


def answers_html(study: dict[str, Any]) -> str:
    """Correct against wrong answers per measurement: score norm, length, log-probability (pooled means), the
    wrong-minus-correct difference of the score norm within prompts, with its interval, and the best constant shift
    of loo-1 against its offset, c*/delta pooled over prompts, with its interval."""
    rows = []
    for r in study["results"]:
        a, sh = r["answers"], r["shift"]
        wm = a.get("wrong_minus_correct", {})
        rows.append([html.escape(str(r["checkpoint"])), str(r["prompt_seed"]),
                     f"{a['norm_correct']:.1f} / {a['norm_wrong']:.1f}",
                     _ci(wm["norm"], ".1f") if "norm" in wm else "–",
                     f"{a['length_correct']:.2f} / {a['length_wrong']:.2f}",
                     f"{a['logp_correct']:.2f} / {a['logp_wrong']:.2f}",
                     _ci(sh["c_star_over_delta_pooled"]) if "c_star_over_delta_pooled" in sh else "–"])
    return _table(["weights", "prompts", "‖S‖ correct / wrong", "‖S‖ wrong − correct", "length correct / wrong",
                   "log π correct / wrong", "c* / δ"], rows)


def power_html(analysis: dict[str, Any], effect: float) -> str:
    """Power to resolve a true difference ``effect`` for each number of seeds (rows) and puzzles (columns)."""
    rows_ = [r for r in analysis["table"] if r["effect"] == effect]
    seeds = sorted({r["seeds"] for r in rows_})
    puzzles = sorted({r["puzzles"] for r in rows_})
    by = {(r["seeds"], r["puzzles"]): r["power"] for r in rows_}
    return _table(["seeds \\ puzzles", *map(str, puzzles)],
                  [[str(s)] + [f"{by[(s, p)]:.2f}" for p in puzzles] for s in seeds])
