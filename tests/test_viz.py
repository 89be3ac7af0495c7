"""Unit tests of maxpo.figures.viz: renderer output, colours for every method, plotly controls."""
from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest

import maxpo
from maxpo.figures import viz


def _line(k: int) -> list[go.Scatter]:
    x = np.linspace(0.0, 1.0, 5)
    return [go.Scatter(x=x, y=1 - (1 - x) ** k, name=f"K={k}"), go.Scatter(x=x, y=x, name="diag")]


def test_every_method_has_a_distinct_colour_and_a_label():
    assert set(viz.METHOD_COLORS) == set(maxpo.METHODS)
    assert set(viz.METHOD_LABELS) == set(maxpo.METHODS)
    assert len(set(viz.METHOD_COLORS.values())) == len(viz.METHOD_COLORS)
    for name in maxpo.METHODS:
        assert viz.method_color(name).startswith("#")
        assert viz.method_label(name)


def test_unknown_method_raises_a_clear_error():
    with pytest.raises(KeyError, match="no colour for method 'nope'"):
        viz.method_color("nope")
    with pytest.raises(KeyError, match="no label"):
        viz.method_label("nope")


def test_import_sets_the_book_renderer_and_template():
    assert pio.renderers.default == viz.RENDERER_NAME
    assert pio.templates.default == viz.TEMPLATE_NAME


def test_renderer_emits_html_without_plotly_js(monkeypatch):
    monkeypatch.setenv(viz.BOOK_BUILD_ENV, "1")
    bundle = go.Figure(_line(2))._repr_mimebundle_()
    assert set(bundle) == {"text/html"}  # the only type myst-nb renders
    html = bundle["text/html"]
    assert 'class="plotly-graph-div"' in html and "Plotly.newPlot" in html
    assert len(html) < 20_000, "plotly.js must not be inlined"
    assert "cdn.plot.ly" not in html and "<script src" not in html


def test_renderer_adds_plotly_json_for_live_sessions(monkeypatch):
    monkeypatch.delenv(viz.BOOK_BUILD_ENV, raising=False)
    bundle = go.Figure(_line(2))._repr_mimebundle_()
    assert set(bundle) == {"text/html", "application/vnd.plotly.v1+json"}
    json.dumps(bundle["application/vnd.plotly.v1+json"])  # plain JSON


def test_figure_height_reaches_the_div():
    assert "height:321px" in viz.figure_html(viz.new_figure(height=321))


def test_slider_figure_steps_carry_the_data_of_each_value():
    values = [1, 2, 4]
    fig = viz.slider_figure(values, _line, label="K", active=1)
    (slider,) = fig.layout.sliders
    assert slider.active == 1 and [s.label for s in slider.steps] == ["1", "2", "4"]
    for value, step in zip(values, slider.steps):
        data, layout = step.args
        assert step.method == "update"
        expected = [t.y.tolist() for t in _line(value)]
        assert data["y"] == expected
        assert data["name"] == [f"K={value}", "diag"]
        assert layout == {}
    # the figure starts at the active value
    assert fig.data[0].name == "K=2"
    json.dumps(fig.to_plotly_json()["layout"]["sliders"], default=str)


def test_slider_figure_layout_for_each_step():
    fig = viz.slider_figure([1, 3], _line, label="K", layout_for=lambda k: {"title": f"K = {k}"})
    assert [s.args[1]["title"] for s in fig.layout.sliders[0].steps] == ["K = 1", "K = 3"]


def test_dropdown_figure():
    fig = viz.dropdown_figure({"two": 2, "eight": 8}, _line)
    (menu,) = fig.layout.updatemenus
    assert [b.label for b in menu.buttons] == ["two", "eight"]
    assert menu.buttons[1].args[0]["name"] == ["K=8", "diag"]


def test_controls_reject_inconsistent_traces_and_bad_arguments():
    def uneven(k: int) -> list[go.Scatter]:
        return _line(k)[: 1 if k > 1 else 2]

    with pytest.raises(ValueError, match="same traces"):
        viz.slider_figure([1, 2], uneven, label="K")
    with pytest.raises(ValueError, match="at least one value"):
        viz.slider_figure([], _line, label="K")
    with pytest.raises(ValueError, match="active=5"):
        viz.slider_figure([1, 2], _line, label="K", active=5)
    with pytest.raises(ValueError, match="step labels"):
        viz.slider_figure([1, 2], _line, label="K", step_labels=["a"])


def test_html_table_escapes_and_orders_columns() -> None:
    out = viz.html_table([{"b": "<x>", "a": 1}, {"b": 2, "a": None}])
    assert out.index(">b<") < out.index(">a<")
    assert "&lt;x&gt;" in out and "<x>" not in out
    assert viz.html_table([]) == "<p>(no rows)</p>"


def test_table_displays_the_html_table() -> None:
    rows = [{"b": "<x>", "a": 1}]
    assert viz.table(rows).data == viz.html_table(rows)


def test_html_table_from_cells_escapes_only_the_header() -> None:
    out = viz.html_table_from_cells(["<h>"], [["<b>1</b>"]])
    assert "&lt;h&gt;" in out and "<b>1</b>" in out
