"""Where maxpo.figures.viz puts legends and menus, so that neither squeezes the plot nor hides the other."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

from maxpo.figures import viz


def _traces(v: int) -> list[go.Scatter]:
    return [go.Scatter(x=[0, 1], y=[v, v + 1], name=f"a long legend entry number {i}") for i in range(4)]


def test_template_legend_is_a_row_below_the_plot() -> None:
    legend = pio.templates[viz.TEMPLATE_NAME].layout.legend
    assert legend.orientation == "h" and legend.yref == "container" and legend.y == 0


def test_dropdown_sits_above_the_plot_with_room() -> None:
    fig = viz.dropdown_figure({"one": 1, "two": 2}, _traces, margin=dict(t=10, b=40))
    menu = fig.layout.updatemenus[0]
    assert menu.yanchor == "bottom" and menu.y > 1
    assert fig.layout.margin.t >= 60 and fig.layout.margin.b == 40
    assert fig.layout.legend.yref is None  # the template's row below the plot applies


def test_slider_figure_puts_the_legend_above_and_keeps_a_callers_choice() -> None:
    fig = viz.slider_figure([1, 2], _traces, label="K")
    assert fig.layout.legend.yref == "paper" and fig.layout.legend.y > 1
    fig = viz.slider_figure([1, 2], _traces, label="K", legend=dict(x=0.9, y=0.1))
    assert fig.layout.legend.yref == "paper" and fig.layout.legend.x == 0.9
    fig = viz.new_figure(legend=dict(x=0.01, y=0.98))
    assert fig.layout.legend.yref == "paper"


def test_wrap_label_breaks_long_legend_entries_at_spaces() -> None:
    text = "AMD EPYC, 1 thread, MALLOC_MMAP_THRESHOLD_=1000000000, MALLOC_TRIM_THRESHOLD_=1000000000"
    wrapped = viz.wrap_label(text, 38)
    assert wrapped.replace("<br>", " ") == text
    assert all(len(line) <= 38 or " " not in line for line in wrapped.split("<br>"))
    assert viz.wrap_label("short") == "short"


def test_raw_subscripts_become_sub_tags_in_figures_and_math_in_tables() -> None:
    assert viz.subscripts_html("cos(∇J_1, ∇J_8)") == "cos(∇J<sub>1</sub>, ∇J<sub>8</sub>)"
    assert viz.subscripts_html("Σ_{K<B} A_K / K") == "Σ<sub>K&lt;B</sub> A<sub>K</sub> / K"
    assert viz.subscripts_html("θ_MaxPO, x^2") == "θ<sub>MaxPO</sub>, x<sup>2</sup>"
    assert (viz.subscripts_tex("max |θ_MaxPO − θ_pairwise|")
            == r"max |\(θ_{\mathrm{MaxPO}}\) − \(θ_{\mathrm{pairwise}}\)|")
    assert viz.subscripts_tex("weights {k: w_k}") == r"weights {k: \(w_{k}\)}"
    for code in ("grpo_passk", "pkpo_loo1", "MALLOC_MMAP_THRESHOLD_=1", "dr_grpo / seq-mean-token-sum-norm"):
        assert viz.subscripts_html(code) == code and viz.subscripts_tex(code) == code
    assert r"<th style='padding:2px 10px;text-align:right'>\(J_{4}\)</th>" in viz.html_table([{"J_4": 1}])


def test_readable_figure_typesets_every_shown_text() -> None:
    fig = viz.slider_figure([1, 2], lambda v: [go.Scatter(x=[0, 1], y=[v, v], name=f"A_{v}")], label="K",
                            title="θ_MaxPO", xaxis_title="J_1")
    fig.add_annotation(text="s_i", x=0, y=0)
    d = viz.readable_figure(fig)
    assert d["data"][0]["name"] == "A<sub>1</sub>"
    assert d["layout"]["title"]["text"] == "θ<sub>MaxPO</sub>"
    assert d["layout"]["xaxis"]["title"]["text"] == "J<sub>1</sub>"
    assert d["layout"]["annotations"][0]["text"] == "s<sub>i</sub>"
    assert [s["args"][0]["name"] for s in d["layout"]["sliders"][0]["steps"]] == [["A<sub>1</sub>"], ["A<sub>2</sub>"]]
    assert fig.data[0].name == "A_1"  # the caller's figure is left as it was


def test_log_axes_get_round_labels_that_do_not_crowd() -> None:
    fig = viz.new_figure()
    fig.add_trace(go.Scatter(x=[1, 2, 3], y=[0.003, 0.2, 4.0]))
    fig.add_trace(go.Scatter(x=[1, 2, 3], y=[2.0, 3.0, 8.0], yaxis="y2"))
    fig.add_trace(go.Scatter(x=[1, 2], y=[1e-16, 1e-7], yaxis="y3"))
    fig.update_layout(yaxis_type="log", yaxis2=dict(type="log", overlaying="y", side="right"),
                      yaxis3=dict(type="log", overlaying="y"))
    layout = viz.readable_figure(fig)["layout"]
    assert layout["yaxis"]["tickvals"] == [0.01, 0.1, 1.0]  # 0.003 .. 4: the powers of ten inside
    assert layout["yaxis2"]["tickvals"] == [2.0, 3.0, 5.0, 7.0]  # 2 .. 8: 1, 1.5, 2, 3, 5, 7 times 10^k inside
    assert "tickvals" not in layout["yaxis3"]  # nine decades: plotly labels whole decades itself
    fig.update_yaxes(tickvals=[0.01, 1], selector=dict(type="log"))
    assert viz.readable_figure(fig)["layout"]["yaxis"]["tickvals"] == [0.01, 1]  # the caller's ticks win


def test_log_labels_read_numpy_data_and_follow_each_menu_state() -> None:
    # plotly >= 6 keeps a numpy array as a typed array ({"dtype", "bdata"}) in fig.to_dict()
    fig = viz.new_figure()
    fig.add_trace(go.Scatter(x=np.array([1.0, 2.0]), y=np.array([15.0, 212.0])))
    fig.update_yaxes(type="log")
    # 15 .. 212: 100 alone, then 30 and 100, then 1, 2, 5 times 10^k inside
    assert viz.readable_figure(fig)["layout"]["yaxis"]["tickvals"] == [20.0, 50.0, 100.0, 200.0]

    data = {"wide": [0.001, 10.0], "narrow": [2.0, 8.0], "huge": [1e-16, 1.0]}
    menu = viz.dropdown_figure({k: k for k in data}, lambda k: [go.Scatter(x=[1, 2], y=data[k])], yaxis_type="log")
    d = viz.readable_figure(menu)
    assert d["layout"]["yaxis"]["tickvals"] == [0.001, 0.01, 0.1, 1.0, 10.0]  # the first state's data
    buttons = d["layout"]["updatemenus"][0]["buttons"]
    ticks = [b["args"][1]["yaxis.tickvals"] for b in buttons]
    assert ticks == [[0.001, 0.01, 0.1, 1.0, 10.0], [2.0, 3.0, 5.0, 7.0], None]  # 16 decades: plotly's own


def test_log_minor_ticks_are_listed_for_every_state() -> None:
    """Minor ticks at listed places (plotly 7 placing them itself next to listed labels took ~40 s per redraw):
    every m * 10^e, m = 1..9, from a decade below the smallest value of any state to a decade above the largest."""
    from fractions import Fraction

    def expected(lo_exp: int, hi_exp: int) -> set[Fraction]:
        return {m * Fraction(10) ** e for e in range(lo_exp, hi_exp + 1) for m in range(1, 10)}

    fig = viz.new_figure()
    fig.add_trace(go.Scatter(x=[1, 2, 3], y=[0.003, 0.2, 4.0]))
    fig.update_layout(yaxis_type="log")
    minor = viz.readable_figure(fig)["layout"]["yaxis"]["minor"]
    # 0.003 = 3e-3 lies in the decade 10^-3 .. 10^-2, 4 in 10^0 .. 10^1: one more decade each side
    assert {Fraction(str(v)) for v in minor["tickvals"]} == expected(-4, 2)
    assert minor["ticks"] == "outside"

    data = {"wide": [0.001, 10.0], "narrow": [2.0, 8.0], "huge": [1e-16, 1.0]}
    menu = viz.dropdown_figure({k: k for k in data}, lambda k: [go.Scatter(x=[1, 2], y=data[k])], yaxis_type="log")
    ticks = viz.readable_figure(menu)["layout"]["yaxis"]["minor"]["tickvals"]
    assert {Fraction(str(v)) for v in ticks} == expected(-17, 2)  # all three states: 1e-16 .. 10
    # over more than 20 decades: no minor ticks at all (plotly labels whole decades there)
    wide = {"a": [1e-30, 1.0], "b": [2.0, 8.0]}
    menu = viz.dropdown_figure({k: k for k in wide}, lambda k: [go.Scatter(x=[1, 2], y=wide[k])], yaxis_type="log")
    assert "minor" not in viz.readable_figure(menu)["layout"]["yaxis"]
