"""Plotly figures of the bandit study and the maze comparison (for the chapters).

Every figure is built from a results dict (as written by ``python -m
maxpo.experiments``) and styled by :mod:`maxpo.figures.viz`; the interactive ones use
plotly's own dropdowns and sliders, so they work in the static book without a
kernel. Confidence bands are drawn as filled traces.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from maxpo.experiments.bandit_study import NOMINAL, select
from maxpo.experiments.stats import Z95
from maxpo.figures import viz

__all__ = [
    "bias_figure", "gradient_alignment_figure", "k_sweep_figure", "learning_curves_figure",
    "loo1_offset_figure", "snr_figure", "variance_ratio_figure", "variance_vs_b_figure",
    "final_vs_k_figure", "variance_vs_k_figure", "alignment_figure", "occupancy_figure",
]

#: the unbiased max@K methods whose variances are compared (canonical is divided by B/K)
MAXK_UNBIASED = ("maxpo", "pkpo_s", "pkpo_loo", "pkpo_loo1", "canonical", "maxpo_pairwise", "tang_loo")
PROBLEM_LABELS = {"bernoulli": "Bernoulli (pass@K)", "light": "light tails (Gaussian)",
                  "heavy": "heavy tails (log-normal)", "jackpot": "rare jackpot"}


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def _band(x: Sequence[float], lo: Sequence[float], hi: Sequence[float], color: str, name: str,
          clip: tuple[float, float] | None = None) -> go.Scatter:
    xs = list(x)
    if clip is not None:  # a probability's interval is shown inside [0, 1]
        lo = [min(max(v, clip[0]), clip[1]) for v in lo]
        hi = [min(max(v, clip[0]), clip[1]) for v in hi]
    return go.Scatter(x=xs + xs[::-1], y=list(hi) + list(lo)[::-1], fill="toself", mode="lines",
                      line=dict(width=0), fillcolor=_rgba(color, 0.18), hoverinfo="skip",
                      showlegend=False, name=f"{name} 95% band")


def _dropdown(options: dict[str, Any], make_traces: Any, **layout: Any) -> go.Figure:
    """:func:`maxpo.figures.viz.dropdown_figure` with the menu above the top left of the plot, where a
    title would be (the book's figure captions say what a figure shows); the legend is below."""
    return viz.dropdown_figure(options, make_traces, **layout)


def _problem_options(result: dict[str, Any]) -> dict[str, str]:
    return {PROBLEM_LABELS.get(p, p): p for p in result["config"]["problems"]}


# --------------------------------------------------------------------------- bandits
def gradient_alignment_figure(bandits: dict[str, Any], ks: Sequence[int]) -> go.Figure:
    """cos(grad J_1, grad J_K) against K for each bandit (exact): how far max@K is from the mean."""
    fig = viz.new_figure(x_title="K", y_title="cos(∇J<sub>1</sub>, ∇J<sub>K</sub>)")  # the caption says what it is
    for i, (name, bd) in enumerate(bandits.items()):
        g1 = bd.gradient(1)
        ys = [float(g1 @ bd.gradient(int(k)) / (g1.norm() * bd.gradient(int(k)).norm())) for k in ks]
        fig.add_trace(go.Scatter(x=list(ks), y=ys, mode="lines+markers", name=PROBLEM_LABELS.get(name, name),
                                 line=dict(color=viz.PALETTE[i % len(viz.PALETTE)])))
    fig.update_xaxes(type="log", tickvals=list(ks))
    fig.update_yaxes(range=[-1.05, 1.05])
    return fig


def _rows_by_method(result: dict[str, Any], problem: str, b: int, k: int) -> dict[str, dict[str, Any]]:
    """The study's rows for one problem and (B, K), keyed by method."""
    return {r["method"]: r for r in select(result["rows"], problem=problem, B=b, K=k)}


def _column(rows: dict[str, dict[str, Any]], methods: Sequence[str], key: str,
            scale: float = 1.0) -> list[float | None]:
    """``rows[m][key] * scale`` for each method, ``None`` where a method has no row."""
    return [rows[m][key] * scale if m in rows else None for m in methods]


def _methods_at(result: dict[str, Any], b: int, k: int, keep: Sequence[str]) -> list[str]:
    """Methods (in ``keep`` order) with a row at (B, K) for at least one problem."""
    present = {r["method"] for r in select(result["rows"], B=b, K=k)}
    return [m for m in keep if m in present]


def bias_figure(result: dict[str, Any], b: int, k: int) -> go.Figure:
    """Relative bias ||mean(g) - grad J_K|| / ||grad J_K|| per method at (B, K), with its noise floor
    and the predicted bias; a dropdown picks the problem."""
    methods = _methods_at(result, b, k, [m for m in NOMINAL if NOMINAL[m].target is not None])
    labels = [viz.method_label(m) for m in methods]

    def traces(problem: str) -> list[go.Bar | go.Scatter]:
        rows = _rows_by_method(result, problem, b, k)

        def col(key: str, scale: float = 1.0) -> list[float | None]:
            return _column(rows, methods, key, scale)

        return [
            go.Bar(x=labels, y=col("rel_bias"), name="measured relative bias",
                   text=[f"p = {rows[m]['bias_p']:.3g}" if m in rows else "" for m in methods],
                   textposition="none",
                   hovertemplate="%{x}<br>relative bias %{y:.3f}<br>%{text}<extra></extra>",
                   marker_color=[viz.method_color(m) for m in methods]),
            go.Scatter(x=labels, y=col("bias_floor", 2.0), mode="markers", name="2 × noise floor",
                       marker=dict(symbol="line-ew-open", size=26, color="#333", line=dict(width=2))),
            go.Scatter(x=labels, y=col("predicted_rel_bias"), mode="markers", name="predicted bias",
                       marker=dict(symbol="diamond-open", size=11, color="#000")),
        ]

    return _dropdown(
        _problem_options(result), traces,
        height=560, yaxis_title="‖mean ĝ − ∇J<sub>K</sub>‖ / ‖∇J<sub>K</sub>‖",
        xaxis=dict(autotickangles=[0, 30, 60, 90]),  # plotly turns the names only as far as they need
    )


def variance_vs_b_figure(result: dict[str, Any], k: int, methods: Sequence[str] = ("maxpo", "pkpo_loo1",
                                                                                     "pkpo_loo", "pkpo_s")
                         ) -> go.Figure:
    """Total variance / ||grad J_K||^2 against B at fixed K (log-log) with 95% intervals; dropdown: problem."""
    bs = sorted({r["B"] for r in select(result["rows"], K=k)})

    def traces(problem: str) -> list[go.Scatter]:
        out = []
        for m in methods:
            rows = sorted(select(result["rows"], problem=problem, K=k, method=m), key=lambda r: r["B"])
            x = [r["B"] for r in rows]
            y = [r["rel_var"] for r in rows]
            lo = [r["rel_var"] - Z95 * r["rel_var_se"] for r in rows]
            hi = [r["rel_var"] + Z95 * r["rel_var_se"] for r in rows]
            pad = len(bs) - len(x)
            out.append(_band(x + [x[-1]] * pad, lo + [lo[-1]] * pad, hi + [hi[-1]] * pad,
                             viz.method_color(m), m))
            out.append(go.Scatter(x=x + [None] * pad, y=y + [None] * pad, mode="lines+markers",
                                  name=viz.method_label(m), line=dict(color=viz.method_color(m))))
        return out

    fig = _dropdown(_problem_options(result), traces, height=480,
                    xaxis_title="B (samples per group)", yaxis_title="tr Cov(ĝ) / ‖∇J<sub>K</sub>‖²")
    fig.update_xaxes(type="log", tickvals=bs)
    fig.update_yaxes(type="log")
    return fig


def variance_vs_k_figure(result: dict[str, Any], bs: Sequence[int] = (16, 32, 64),
                         methods: Sequence[str] = ("maxpo", "pkpo_loo1", "pkpo_loo", "pkpo_s")) -> go.Figure:
    """Total variance / ||grad J_K||^2 against K at fixed B, with 95% intervals; dropdown: problem and B."""
    options = {f"{PROBLEM_LABELS.get(p, p)}, B = {b}": (p, b) for p in result["config"]["problems"] for b in bs}
    n_k = max(len({r["K"] for r in select(result["rows"], B=b, method="maxpo")}) for b in bs)

    def traces(choice: tuple[str, int]) -> list[go.Scatter]:
        problem, b = choice
        out = []
        for m in methods:
            rows = sorted(select(result["rows"], problem=problem, B=b, method=m), key=lambda r: r["K"])
            rows = [r for r in rows if r["K"] < b]  # K = B has no MaxPO to compare with
            x = [r["K"] for r in rows]
            y = [r["rel_var"] for r in rows]
            lo = [r["rel_var"] - Z95 * r["rel_var_se"] for r in rows]
            hi = [r["rel_var"] + Z95 * r["rel_var_se"] for r in rows]
            pad = n_k - len(x)
            out.append(_band(x + [x[-1]] * pad, lo + [lo[-1]] * pad, hi + [hi[-1]] * pad, viz.method_color(m), m))
            out.append(go.Scatter(x=x + [None] * pad, y=y + [None] * pad, mode="lines+markers",
                                  name=viz.method_label(m), line=dict(color=viz.method_color(m))))
        return out

    ks = sorted({r["K"] for r in result["rows"]})
    fig = _dropdown(options, traces, height=480, xaxis_title="K", yaxis_title="tr Cov(ĝ) / ‖∇J<sub>K</sub>‖²")
    fig.update_xaxes(type="log", tickvals=ks)
    fig.update_yaxes(type="log")
    return fig


def variance_ratio_figure(result: dict[str, Any], methods: Sequence[str] = ("pkpo_loo1", "pkpo_loo", "pkpo_s",
                                                                              "canonical", "maxpo_pairwise")
                          ) -> go.Figure:
    """Variance relative to MaxPO on the same draws, every (B, K), one line per problem; dropdown: method."""
    settings = [tuple(s) for s in result["config"]["all_settings"]
                if select(result["rows"], B=s[0], K=s[1], method="maxpo")]
    labels = [f"B={b_}, K={k_}" for b_, k_ in settings]
    problems = list(result["config"]["problems"])

    def traces(method: str) -> list[go.Scatter]:
        out = []
        for i, p in enumerate(problems):
            y, lo, hi = [], [], []
            for b_, k_ in settings:
                rows = select(result["rows"], problem=p, B=b_, K=k_, method=method)
                if rows and rows[0].get("var_ratio") is not None:
                    r = rows[0]
                    y.append(r["var_ratio"])
                    lo.append(r["var_ratio"] - Z95 * r["var_ratio_se"])
                    hi.append(r["var_ratio"] + Z95 * r["var_ratio_se"])
                else:
                    y.append(None)
                    lo.append(None)
                    hi.append(None)
            color = viz.PALETTE[i % len(viz.PALETTE)]
            err = [None if v is None else h - v for v, h in zip(y, hi)]
            out.append(go.Scatter(x=labels, y=y, mode="markers", name=PROBLEM_LABELS.get(p, p),
                                  marker=dict(color=color, size=9),
                                  customdata=err,
                                  hovertemplate="%{x}: %{y:.3f} ± %{customdata:.3f}<extra>" + p + "</extra>"))
        return out

    fig = _dropdown({viz.method_label(m): m for m in methods}, traces, height=500,
                    yaxis_title="tr Cov(ĝ) / tr Cov(ĝ<sub>MaxPO</sub>)", margin=dict(b=120))
    fig.add_hline(y=1.0, line=dict(color="#c0392b", dash="dash"))
    fig.update_yaxes(type="log")
    fig.update_xaxes(tickangle=-45)
    return fig


def snr_figure(result: dict[str, Any], b: int, k: int) -> go.Figure:
    """Scale-free comparison of every method at (B, K): SNR and mean cosine to grad J_K; dropdown: problem."""
    from maxpo import METHODS

    methods = _methods_at(result, b, k, list(METHODS))
    labels = [viz.method_label(m) for m in methods]

    def traces(problem: str) -> list[go.Bar | go.Scatter]:
        rows = _rows_by_method(result, problem, b, k)

        def col(key: str, scale: float = 1.0) -> list[float | None]:
            return _column(rows, methods, key, scale)

        return [
            go.Bar(x=labels, y=col("snr"), name="SNR = ‖E ĝ‖² / tr Cov ĝ",
                   marker_color=[viz.method_color(m) for m in methods], customdata=col("snr_se", Z95),
                   hovertemplate="%{x}<br>SNR %{y:.4f} ± %{customdata:.4f}<extra></extra>"),
            go.Scatter(x=labels, y=col("cosine"), name="mean cos(ĝ, ∇J<sub>K</sub>)", mode="markers", yaxis="y2",
                       marker=dict(symbol="diamond", size=11, color="#222"), customdata=col("cosine_se", Z95),
                       hovertemplate="%{x}<br>cosine %{y:.4f} ± %{customdata:.4f}<extra></extra>"),
        ]

    return _dropdown(
        _problem_options(result), traces, yaxis=dict(title="SNR (bars)", type="log"),
        yaxis2=dict(title="cosine (◆)", overlaying="y", side="right", showgrid=False),
        xaxis=dict(tickangle=-90), height=560, margin=dict(l=50, r=40),
    )


def alignment_figure(result: dict[str, Any], b: int, k: int, groups: Sequence[int] = (1, 3, 10, 30, 100, 300,
                                                                                    1000, 3000, 10000)
                     ) -> go.Figure:
    """RMS alignment of the average of G groups' estimates with grad J_K, against G; dropdown: problem."""
    from maxpo import METHODS
    from maxpo.experiments.bandit_study import alignment

    methods = _methods_at(result, b, k, [m for m in METHODS if m not in ("maxpo_pairwise", "canonical")])

    def traces(problem: str) -> list[go.Scatter]:
        rows = _rows_by_method(result, problem, b, k)
        return [go.Scatter(x=list(groups), y=[alignment(rows[m], g) for m in [m] for g in groups]
                           if m in rows else [None] * len(groups), mode="lines+markers", name=viz.method_label(m),
                           line=dict(color=viz.method_color(m))) for m in methods]

    fig = _dropdown(_problem_options(result), traces, height=560, xaxis_title="G (groups averaged into one step)",
                    yaxis_title="E[ḡ<sub>G</sub>]·∇J<sub>K</sub> / (‖∇J<sub>K</sub>‖ √E‖ḡ<sub>G</sub>‖²)")
    fig.update_xaxes(type="log")
    fig.update_yaxes(range=[-1.02, 1.02])
    return fig


def loo1_offset_figure(result: dict[str, Any]) -> go.Figure:
    """Variance ratio loo-1 / MaxPO against |c| / sd(c_hat): the offset loo-1 keeps vs the noise MaxPO pays."""
    fig = viz.new_figure(title="When does loo-1 beat MaxPO?", x_title="offset / its in-batch noise  |δ| / sd(d̄)",
                         y_title="tr Cov(ĝ<sub>loo-1</sub>) / tr Cov(ĝ<sub>MaxPO</sub>)", height=480)
    for i, p in enumerate(result["config"]["problems"]):
        rows = [r for r in select(result["rows"], problem=p, method="pkpo_loo1")
                if r.get("var_ratio") is not None and r.get("offset_to_noise") is not None]
        fig.add_trace(go.Scatter(
            x=[r["offset_to_noise"] for r in rows], y=[r["var_ratio"] for r in rows], mode="markers",
            name=PROBLEM_LABELS.get(p, p), marker=dict(size=9, color=viz.PALETTE[i % len(viz.PALETTE)]),
            error_y=dict(type="data", array=[Z95 * r["var_ratio_se"] for r in rows], thickness=1),
            text=[f"B={r['B']}, K={r['K']}" for r in rows],
            hovertemplate="%{text}<br>ratio %{y:.3f}<br>offset/noise %{x:.2f}<extra></extra>"))
    fig.add_hline(y=1.0, line=dict(color="#c0392b", dash="dash"))
    fig.add_vline(x=1.0, line=dict(color="#555", dash="dot"))
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    return fig


# --------------------------------------------------------------------------- maze
def _metric_options(exp: dict[str, Any], ks: Sequence[int]) -> dict[str, str]:
    opts = {f"pass@{k}": f"pass@{k}" for k in ks}
    goals = exp["maze"]["goals"]
    if len(goals) > 1:
        for t, g in enumerate(goals):
            opts[f"P(reach goal {g})"] = f"task{t}"
    return opts


def learning_curves_figure(exp: dict[str, Any], methods: Sequence[str] | None = None,
                           ks: Sequence[int] = (1, 8)) -> go.Figure:
    """Exact learning curves, mean over seeds with 95% t-bands, one line per method; dropdown: metric."""
    summary = exp["summary"]
    methods = [m for m in (methods or list(summary)) if m in summary]
    steps = exp["eval_steps"]

    def traces(metric: str) -> list[go.Scatter]:
        out = []
        for m in methods:
            s = summary[m][metric]
            color = viz.method_color(summary[m]["method"])
            out.append(_band(steps, s["lo"], s["hi"], color, m, clip=(0.0, 1.0)))
            label = viz.method_label(m) + ("" if m in ("grpo", "rloo", "dr_grpo") else f" (K={summary[m]['k']})")
            out.append(go.Scatter(x=steps, y=s["mean"], mode="lines", name=label, line=dict(color=color)))
        return out

    fig = _dropdown(_metric_options(exp, ks), traces, height=500, xaxis_title="training step",
                    yaxis_title="exact value (mean over seeds)")
    fig.update_yaxes(range=[-0.02, 1.02])
    return fig


def k_sweep_figure(exp: dict[str, Any], ks: Sequence[int] = (1, 8)) -> go.Figure:
    """MaxPO trained with each K: a slider over the training K; curves of pass@k and of each goal."""
    summary = exp["summary"]
    keys = sorted(summary, key=lambda s: int(s))
    steps = exp["eval_steps"]
    metrics = [f"pass@{k}" for k in ks] + [f"task{t}" for t in range(len(exp["maze"]["goals"]))]
    names = [f"pass@{k}" for k in ks] + [f"P(goal {g})" for g in exp["maze"]["goals"]]

    def traces(key: str) -> list[go.Scatter]:
        out = []
        for i, (metric, name) in enumerate(zip(metrics, names)):
            s = summary[key][metric]
            color = viz.PALETTE[i % len(viz.PALETTE)]
            out.append(_band(steps, s["lo"], s["hi"], color, name, clip=(0.0, 1.0)))
            out.append(go.Scatter(x=steps, y=s["mean"], mode="lines", name=name, line=dict(color=color)))
        return out

    fig = viz.slider_figure(keys, traces, label="training K", active=keys.index("8") if "8" in keys else 0,
                            height=520,
                            xaxis_title="training step", yaxis_title="exact value (mean over seeds)")
    fig.update_yaxes(range=[-0.02, 1.02])
    return fig


def final_vs_k_figure(exp: dict[str, Any], ks: Sequence[int] = (1, 8)) -> go.Figure:
    """Final exact pass@k (mean and 95% interval over seeds) against the training K."""
    import torch

    from maxpo.experiments.stats import seed_band

    summary = exp["summary"]
    keys = sorted(summary, key=lambda s: int(s))
    fig = viz.new_figure(x_title="training K", y_title="final exact value")  # the caption says what it is
    for i, k in enumerate(ks):
        means, up, down = [], [], []
        for key in keys:
            mean, lo, hi = seed_band(torch.tensor(summary[key][f"pass@{k}"]["final"]).unsqueeze(-1))
            m = float(mean[0])
            means.append(m)
            up.append(min(float(hi[0]), 1.0) - m)  # intervals of a probability shown inside [0, 1]
            down.append(m - max(float(lo[0]), 0.0))
        fig.add_trace(go.Scatter(x=[int(s) for s in keys], y=means, mode="lines+markers", name=f"pass@{k}",
                                 line=dict(color=viz.PALETTE[i]),
                                 error_y=dict(type="data", array=up, arrayminus=down, thickness=1)))
    fig.update_xaxes(tickvals=[int(s) for s in keys])
    return fig


def occupancy_figure(mz: Any, policies: dict[str, Any]) -> go.Figure:
    """Heat maps of the expected steps spent in each cell (exact) under each policy, side by side.

    ``policies`` maps a panel title to logits ``(n_cells, 4)`` of a :class:`maxpo.experiments.maze.Maze` ``mz``;
    walls show as the dark background, the start and the goals are labelled.
    """
    from plotly.subplots import make_subplots

    rows, cols = len(mz.rows), len(mz.rows[0])
    # one maze per row: side by side, three wide mazes shrank to thumbnails (and to slivers on a phone)
    fig = make_subplots(rows=len(policies), cols=1, subplot_titles=list(policies), vertical_spacing=0.08)
    labels = {mz.start: "S", **{c: g for c, g in zip(mz.goal_cells, mz.goals)}}
    occupancies = [mz.occupancy(logits.unsqueeze(0))[0].tolist() for logits in policies.values()]
    zmax = max(max(occ) for occ in occupancies)  # one colour scale for every panel
    for j, occ in enumerate(occupancies, start=1):
        z = [[None] * cols for _ in range(rows)]
        text = [[""] * cols for _ in range(rows)]
        for n, (r, c) in enumerate(mz.cells):
            z[r][c] = occ[n]
            text[r][c] = labels.get(n, "")
        fig.add_trace(go.Heatmap(z=z, text=text, texttemplate="%{text}", colorscale="Blues", zmin=0, zmax=zmax,
                                 showscale=j == len(policies), xgap=1, ygap=1,
                                 hovertemplate="expected steps here: %{z:.2f}<extra></extra>"), row=j, col=1)
        fig.update_xaxes(visible=False, constrain="domain", row=j, col=1)
        fig.update_yaxes(visible=False, autorange="reversed", scaleanchor=f"x{j if j > 1 else ''}",
                         constrain="domain", row=j, col=1)
    panel = math.ceil(560 * rows / cols) + 40  # a maze at about the text column's width, and its title
    fig.update_layout(height=len(policies) * panel, margin=dict(t=30, b=5, l=5, r=5), plot_bgcolor="#555")
    return fig
