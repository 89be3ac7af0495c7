"""Where maxpo.figures.viz puts legends and menus, so that neither squeezes the plot nor hides the other."""
from __future__ import annotations

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
