"""The plotly layer every chapter uses: offline rendering, one theme, one colour per method.

Importing this module configures plotly for the book (idempotent; :func:`setup`
does it again explicitly):

* **Renderer.** Plotly >= 6 in a kernel defaults to the
  ``application/vnd.plotly.v1+json`` MIME type, which myst-nb does not render:
  the figure silently disappears from the built page. The ``"maxpo"`` renderer
  registered here emits a bundle with two entries:

  - ``text/html``: the figure's ``<div>`` and the script that calls
    ``Plotly.newPlot``, *without* plotly.js (``include_plotlyjs=False``). The
    book's Sphinx extension (``book/_ext/offline_assets.py``) serves the
    plotly.js that ships with the installed ``plotly`` package from
    ``_static/plotly/`` and adds it to each page with a figure. So the book works
    with no network and each page carries only its figures' data, instead of
    the 4.8 MB library once per page (what the ``notebook`` renderer would do).
  - ``application/vnd.plotly.v1+json``: the figure as JSON, which JupyterLab,
    Notebook 7 and VS Code render natively in a live session (they have no
    plotly.js of their own for the HTML entry). It is left out while the book
    is being built (the Sphinx extension sets ``MAXPO_BOOK_BUILD=1``, which the
    kernels inherit), because myst-nb warns about every MIME type it cannot
    render and the book builds with ``-W``.
* **Theme.** A small ``"maxpo"`` plotly template (white background, light grid,
  one font, fixed margins) is the default.
* **Colours.** :data:`METHOD_COLORS` gives every estimator in
  :data:`maxpo.METHODS` a fixed colour, so a method looks the same in every
  chapter; :func:`method_color` and :func:`method_label` look them up.
* **Interaction without a kernel.** :func:`slider_figure` and
  :func:`dropdown_figure` build figures whose controls are plotly's own sliders
  and menus: pure JavaScript, so they work in the static HTML book.
* **Tables.** :func:`html_table` renders a list of records as HTML and
  :func:`table` wraps it for display in a chapter (:func:`html_table_from_cells`
  builds the table from cells that are HTML already).
"""
from __future__ import annotations

import base64
import copy
import html
import json
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.io._base_renderers import MimetypeRenderer

if TYPE_CHECKING:  # pragma: no cover
    from IPython.display import HTML

__all__ = [
    "METHOD_COLORS",
    "METHOD_LABELS",
    "PALETTE",
    "RENDERER_NAME",
    "TEMPLATE_NAME",
    "BOOK_BUILD_ENV",
    "BookRenderer",
    "LEGEND_ABOVE",
    "building_book",
    "dropdown_figure",
    "figure_html",
    "html_table",
    "html_table_from_cells",
    "frame_table",
    "method_color",
    "method_label",
    "new_figure",
    "setup",
    "show",
    "readable_figure",
    "slider_figure",
    "subscripts_html",
    "subscripts_tex",
    "wrap_label",
    "table",
]

RENDERER_NAME = "maxpo"
TEMPLATE_NAME = "maxpo"
#: Environment variable set (to ``1``) by ``book/_ext/offline_assets.py`` during a book build.
BOOK_BUILD_ENV = "MAXPO_BOOK_BUILD"

#: Fixed colour of every estimator in :data:`maxpo.METHODS`. MaxPO and its
#: pairwise form share a hue (they are the same numbers), the PKPO family is
#: blue, the pass@1 baselines are muted.
METHOD_COLORS: dict[str, str] = {
    "maxpo": "#c0392b",
    "maxpo_pairwise": "#f1948a",
    "canonical": "#8e44ad",
    "pkpo_s": "#1f77b4",
    "pkpo_loo": "#17becf",
    "pkpo_loo1": "#1a3a7a",
    "chen_passk": "#2ca02c",
    "tang_loo": "#b8a000",
    "grpo_passk": "#6b5b00",
    "maxrl": "#ff7f0e",
    "grpo": "#7f7f7f",
    "dr_grpo": "#a0522d",
    "rloo": "#e377c2",
}

#: Short display names for legends.
METHOD_LABELS: dict[str, str] = {
    "maxpo": "MaxPO (L2O baseline)",
    "maxpo_pairwise": "MaxPO, pairwise form",
    "canonical": "canonical advantage",
    "pkpo_s": "PKPO signal s (no baseline)",
    "pkpo_loo": "PKPO leave-one-out",
    "pkpo_loo1": "PKPO loo-1",
    "chen_passk": "Chen et al. pass@k",
    "tang_loo": "Tang et al. leave-one-out",
    "grpo_passk": "verl grpo_passk (Tang et al. / std)",
    "maxrl": "MaxRL",
    "grpo": "GRPO",
    "dr_grpo": "Dr. GRPO",
    "rloo": "RLOO",
}

#: Colours for quantities that are not methods (values of K, data vs theory, ...).
PALETTE: tuple[str, ...] = (
    "#0b6e99", "#e07a1f", "#3a923a", "#b03a48", "#6c4f9c", "#8c6d31", "#c2559b", "#5f6b73",
)

#: plotly.js options for every figure: no logo, no cloud buttons, resize with the page.
PLOTLY_CONFIG: dict[str, Any] = {
    "responsive": True,
    "displaylogo": False,
    "modeBarButtonsToRemove": ["lasso2d", "select2d"],
}

_FONT = "Source Sans Pro, Helvetica Neue, Arial, sans-serif"
_GRID = "#e5e9ef"

#: Height in pixels of a figure whose layout sets none.
DEFAULT_HEIGHT = 430


def _method_lookup(table: Mapping[str, str], name: str, what: str) -> str:
    try:
        return table[name]
    except KeyError:
        raise KeyError(f"no {what} for method {name!r}; known methods: {sorted(table)}") from None


def method_color(name: str) -> str:
    """Colour of estimator ``name`` (a key of :data:`maxpo.METHODS`)."""
    return _method_lookup(METHOD_COLORS, name, "colour")


def method_label(name: str) -> str:
    """Legend label of estimator ``name`` (a key of :data:`maxpo.METHODS`)."""
    return _method_lookup(METHOD_LABELS, name, "label")


def figure_html(fig: go.Figure | Mapping[str, Any]) -> str:
    """The figure as an HTML fragment (``<div>`` + script) that does not embed plotly.js.

    The page that shows it must load plotly.js first; the built book does
    (``book/_ext/offline_assets.py``).
    """
    fig_dict = readable_figure(fig)
    layout = fig_dict.get("layout") or {}
    height = layout.get("height") or DEFAULT_HEIGHT
    return pio.to_html(
        fig_dict,
        include_plotlyjs=False,
        include_mathjax=False,
        full_html=False,
        config=PLOTLY_CONFIG,
        default_width="100%",
        default_height=f"{int(height)}px",
        validate=False,
    )


# --- readable text and ticks (applied to every figure the renderer shows) ---

#: A raw sub- or superscript: a lone letter (not the end of a longer word such as
#: ``grpo_passk``) followed by ``_`` or ``^`` and a braced group or a run of letters/digits.
_SCRIPT = re.compile(r"(?<![\w])([^\W\d_])([_^])(\{[^{}]*\}|[-\u2212]?[^\W_]+)")


def _script_body(raw: str) -> str:
    return raw[1:-1] if raw.startswith("{") else raw


def subscripts_html(text: str) -> str:
    """``text`` with raw ``X_k``, ``X_{k+1}``, ``X^2`` written as ``X<sub>k</sub>``/``<sup>``, as plotly draws them.

    Only a lone letter is a base, so code names such as ``grpo_passk`` stay as they are.
    """
    def repl(m: re.Match[str]) -> str:
        tag = "sub" if m.group(2) == "_" else "sup"
        body = _script_body(m.group(3)).replace("<", "&lt;").replace(">", "&gt;")
        return f"{m.group(1)}<{tag}>{body}</{tag}>"

    return _SCRIPT.sub(repl, text)


def subscripts_tex(text: str) -> str:
    """``text`` with each raw ``X_k``/``X^k`` (see :func:`subscripts_html`) as inline MathJax ``\\(X_{k}\\)``.

    A subscript of several letters is set upright (``\\mathrm``), e.g. θ_MaxPO.
    """
    def repl(m: re.Match[str]) -> str:
        body = _script_body(m.group(3)).replace("\u2212", "-")
        if len(body) > 1 and body.isalpha():
            body = rf"\mathrm{{{body}}}"
        return rf"\({m.group(1)}{m.group(2)}{{{body}}}\)"

    return _SCRIPT.sub(repl, text)


#: Layout and trace keys whose string values are shown to the reader as text.
_TEXT_KEYS = frozenset({"text", "name", "label", "prefix", "suffix", "title"})


def _typeset(node: Any, key: str | None = None) -> Any:
    if isinstance(node, str):
        return subscripts_html(node) if key in _TEXT_KEYS else node
    if isinstance(node, Mapping):
        return {k: _typeset(v, k) for k, v in node.items()}
    if isinstance(node, (list, tuple)):  # a list of texts keeps its key; dicts in a list start afresh
        return [_typeset(v, key if key in _TEXT_KEYS else None) for v in node]
    return node


def _positive_values(values: Any) -> np.ndarray:
    """The finite positive numbers of a trace's ``x`` or ``y``: a list, an array, or plotly's typed array.

    Plotly >= 6 stores a numpy array in ``fig.to_dict()`` as ``{"dtype": "f8", "bdata": <base64>}``.
    """
    if isinstance(values, Mapping) and "bdata" in values and "dtype" in values:
        try:
            values = np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(str(values["dtype"])))
        except (TypeError, ValueError):
            return np.empty(0)
    try:
        arr = np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError):
        return np.empty(0)
    return arr[np.isfinite(arr) & (arr > 0)]


def _axis_values(fig_dict: Mapping[str, Any], axis_key: str) -> tuple[np.ndarray, list[tuple[dict, np.ndarray]]]:
    """The positive data on layout axis ``axis_key`` (``xaxis``, ``yaxis2``, ...): the figure's own traces', and
    each control step's that replaces them, as ``(values, [(step, values), ...])``."""
    letter, ref = axis_key[0], axis_key[0] + axis_key[5:]
    data = fig_dict.get("data") or []
    on_axis = [i for i, t in enumerate(data) if (t.get(f"{letter}axis") or letter) == ref]
    found = [_positive_values(data[i].get(letter)) for i in on_axis if data[i].get(letter) is not None]
    own = np.concatenate(found) if found else np.empty(0)
    layout = fig_dict.get("layout") or {}
    steps: list[tuple[dict, np.ndarray]] = []
    for control in list(layout.get("sliders") or []) + list(layout.get("updatemenus") or []):
        for step in control.get("steps") or control.get("buttons") or []:
            args = step.get("args") or []
            update = args[0] if args and isinstance(args[0], Mapping) else {}
            per_trace = update.get(letter)
            if isinstance(per_trace, list):
                vals = [_positive_values(per_trace[i]) for i in on_axis if i < len(per_trace)
                        and per_trace[i] is not None]
                steps.append((step, np.concatenate(vals) if vals else np.empty(0)))
    return own, steps


def _log_ticks_for(values: np.ndarray) -> list[float] | None:
    """Round labels for a log axis showing ``values`` (:func:`_log_tickvals`), or ``None`` to leave plotly's."""
    if values.size == 0 or math.log10(values.max() / values.min()) > 5:
        return None
    return _log_tickvals(float(values.min()), float(values.max()))


#: A log axis whose data span more decades than this gets no minor ticks of its own.
MINOR_MAX_DECADES = 20


def _log_minor_tickvals(values: np.ndarray) -> list[float] | None:
    """Where a log axis showing ``values`` (every state of its figure) draws its minor ticks, listed explicitly.

    ``m * 10^e`` for m = 1..9, over the data's decades and one more on each side
    (the autorange pads). plotly 7 left to place them itself next to listed
    labels (``tickvals``) takes about 40 s for each redraw after a menu or
    slider changes the data (measured in Chromium on this book's bandits page),
    which froze the page; listed, a redraw takes milliseconds. ``None`` (no minor
    ticks) beyond :data:`MINOR_MAX_DECADES` decades or without data.
    """
    if values.size == 0:
        return None
    lo, hi = math.floor(math.log10(values.min())) - 1, math.ceil(math.log10(values.max())) + 1
    if hi - lo > MINOR_MAX_DECADES:
        return None
    return [float(f"{m * 10.0 ** e:.12g}") for e in range(lo, hi + 1) for m in range(1, 10)]


#: Mantissas tried, in order, for the labels of a log axis spanning less than a few decades.
_LOG_MANTISSAS: tuple[tuple[float, ...], ...] = ((1.0,), (1.0, 3.0), (1.0, 2.0, 5.0), (1.0, 1.5, 2.0, 3.0, 5.0, 7.0))


def _log_tickvals(lo: float, hi: float) -> list[float] | None:
    """Three to about eight round values in ``[lo, hi]`` for a log axis (the fewest that give three)."""
    for mantissas in _LOG_MANTISSAS:
        vals = [float(f"{m * 10.0 ** e:.12g}") for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
                for m in mantissas]
        vals = [v for v in vals if lo <= v <= hi]
        if len(vals) >= 3:
            return vals
    return None


def readable_figure(fig: go.Figure | Mapping[str, Any]) -> dict[str, Any]:
    """The figure as a dict, made readable the same way for every chapter.

    * Raw ``X_k`` in titles, axis titles, legend entries, annotations and control
      labels becomes ``X<sub>k</sub>`` (:func:`subscripts_html`).
    * A log axis that sets none of ``dtick``/``tickvals`` and whose data span at
      most five decades gets round labels of its own: the powers of ten when
      they give three labels, else 1 and 3, else 1, 2 and 5 times them, ... (with
      minor ticks between, at listed places: :func:`_log_minor_tickvals`). plotly's
      default labels every 2 and 5 (or every digit) in a small font there, which overlap into "2, 100, 9…2". Over more
      decades plotly already labels whole decades. A slider step or menu button
      that replaces the data (method ``update``) sets the labels for its own data.
    """
    fig_dict = copy.deepcopy(dict(fig) if isinstance(fig, Mapping) else fig.to_dict())
    data = fig_dict.get("data") or []
    layout = dict(fig_dict.get("layout") or {})
    for key, axis in list(layout.items()):
        if not re.fullmatch(r"[xy]axis\d*", key) or not isinstance(axis, Mapping):
            continue
        if axis.get("type") != "log" or any(axis.get(k) is not None for k in ("dtick", "tickvals")):
            continue
        own, steps = _axis_values(fig_dict, key)
        tickvals = _log_ticks_for(own)
        # a control that replaces the data gets the labels of its own data (plotly re-ranges the axis then)
        step_ticks = [(step, _log_ticks_for(vals)) for step, vals in steps if step.get("method") == "update"]
        if tickvals is None and not any(t for _, t in step_ticks):
            continue
        axis = dict(axis)
        if tickvals is not None:
            axis["tickvals"] = tickvals
        minor = _log_minor_tickvals(np.concatenate([own, *(vals for _, vals in steps)]))
        if minor is not None:
            axis.setdefault("minor", dict(ticks="outside", ticklen=3, showgrid=False, tickvals=minor))
        layout[key] = axis
        for step, ticks in step_ticks:
            args = list(step.get("args") or [{}])
            args += [{}] * (2 - len(args))
            args[1] = {**(args[1] or {}), f"{key}.tickvals": ticks}
            step["args"] = args
    fig_dict["layout"] = _typeset(layout)
    fig_dict["data"] = [_typeset(t) for t in data]
    return fig_dict


def building_book() -> bool:
    """True inside a Jupyter Book build of this book (``MAXPO_BOOK_BUILD=1``)."""
    return os.environ.get(BOOK_BUILD_ENV, "0") == "1"


class BookRenderer(MimetypeRenderer):
    """Plotly renderer for the book: HTML without plotly.js, plus plotly JSON for live front ends.

    ``with_json=None`` (the default) includes the JSON entry except during a book build.
    """

    def __init__(self, with_json: bool | None = None) -> None:
        self.with_json = with_json

    def to_mimebundle(self, fig_dict: dict[str, Any]) -> dict[str, Any]:
        fig_dict = readable_figure(fig_dict)
        bundle: dict[str, Any] = {"text/html": figure_html(fig_dict)}
        with_json = (not building_book()) if self.with_json is None else self.with_json
        if with_json:
            fig_json = json.loads(pio.to_json(fig_dict, validate=False, remove_uids=False))
            fig_json["config"] = dict(PLOTLY_CONFIG)
            bundle["application/vnd.plotly.v1+json"] = fig_json
        return bundle


def _template() -> go.layout.Template:
    # A small template of our own (plotly_white is ~7 kB and would be embedded in
    # every figure's JSON on the page).
    axis = dict(
        gridcolor=_GRID, zeroline=False, ticks="outside", showline=True,
        linecolor="#888", automargin=True,
    )
    return go.layout.Template(
        layout=go.Layout(
            font=dict(family=_FONT, size=14, color="#2b2b2b"),
            title=dict(font=dict(size=17), x=0.02, xanchor="left"),
            colorway=list(PALETTE),
            paper_bgcolor="white",
            plot_bgcolor="white",
            margin=dict(l=60, r=20, t=40, b=55),
            hoverlabel=dict(font=dict(family=_FONT)),
            hovermode="closest",
            # Below the plot, in a row that wraps: a legend on the right would squeeze the
            # plot area to a sliver on a phone (and does so on a desktop when the names are long).
            legend=dict(bgcolor="rgba(255,255,255,0.7)", orientation="h", x=0, xanchor="left",
                        y=0, yanchor="bottom", yref="container"),
            xaxis=axis,
            yaxis=axis,
        )
    )


def setup() -> None:
    """Register the ``maxpo`` template and renderer and make them plotly's defaults."""
    pio.templates[TEMPLATE_NAME] = _template()
    pio.templates.default = TEMPLATE_NAME
    pio.renderers[RENDERER_NAME] = BookRenderer()
    pio.renderers.default = RENDERER_NAME


def show(fig: go.Figure) -> go.Figure:
    """Return ``fig`` for display (same as leaving it as a cell's last expression).

    Exists so that a chapter can display a figure that is not the last line of
    a cell: ``viz.show(fig)`` inside a loop, for instance.
    """
    from IPython.display import display

    setup()
    display(fig)
    return fig


#: Where a legend goes when a figure has a slider below its plot: above the plot.
LEGEND_ABOVE: dict[str, Any] = dict(orientation="h", x=0, xanchor="left", y=1.02, yanchor="bottom", yref="paper")


def _paper_legend(layout: dict[str, Any], default: Mapping[str, Any] | None = None) -> None:
    """Give a caller's ``legend`` paper coordinates unless it names its own ``yref``.

    The template puts legends at the bottom of the figure in container coordinates;
    a position such as ``y=1.02`` given by a caller means the plot's paper
    coordinates, as it does in plain plotly. ``default`` is used when the caller
    gives no legend at all.
    """
    legend = layout.get("legend")
    if legend is None:
        if default is not None:
            layout["legend"] = dict(default)
        return
    legend = dict(legend) if isinstance(legend, Mapping) else legend.to_plotly_json()
    if any(key in legend for key in ("x", "y")):
        legend.setdefault("yref", "paper")
    layout["legend"] = legend


def new_figure(
    *,
    title: str | None = None,
    x_title: str | None = None,
    y_title: str | None = None,
    height: int = DEFAULT_HEIGHT,
    **layout: Any,
) -> go.Figure:
    """An empty figure in the book's style with axis titles and a fixed height."""
    fig = go.Figure()
    _paper_legend(layout)
    fig.update_layout(title=title, height=height, **layout)
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text=y_title)
    return fig


# --- interactive figures (plotly's own controls: work in the static book) ---

#: Trace attributes a slider or dropdown step may change.
_STEP_KEYS = ("x", "y", "text", "customdata", "name", "hovertext")


def _plain(value: Any) -> Any:
    """JSON-friendly copy: numpy and tuples become lists (plotly.js restyle needs plain arrays)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _step_update(
    traces: Sequence[go.Figure | Any], n_traces: int, where: str
) -> dict[str, list[Any]]:
    if len(traces) != n_traces:
        raise ValueError(
            f"{where} made {len(traces)} traces, but the first step made {n_traces}: "
            "every step must make the same traces (with new data)"
        )
    update: dict[str, list[Any]] = {}
    for key in _STEP_KEYS:
        values = [getattr(t, key, None) for t in traces]
        if any(v is not None for v in values):
            update[key] = [_plain(v) for v in values]
    return update


def _build_steps(
    values: Sequence[Any],
    make_traces: Callable[[Any], Sequence[Any]],
    layout_for: Callable[[Any], Mapping[str, Any]] | None,
    active: int,
) -> tuple[go.Figure, list[tuple[dict[str, list[Any]], dict[str, Any]]]]:
    if not values:
        raise ValueError("need at least one value for the control")
    if not 0 <= active < len(values):
        raise ValueError(f"active={active} is not an index into {len(values)} values")
    first = list(make_traces(values[active]))
    fig = go.Figure(data=first)
    if layout_for is not None:
        fig.update_layout(**layout_for(values[active]))
    steps = []
    for value in values:
        traces = list(make_traces(value))
        data = _step_update(traces, len(first), f"make_traces({value!r})")
        layout = dict(layout_for(value)) if layout_for is not None else {}
        steps.append((data, _plain(layout)))
    return fig, steps


def _control_steps(labels: Sequence[str], steps: Sequence[tuple[dict[str, Any], dict[str, Any]]]) -> list[dict]:
    """Slider steps or menu buttons: each applies its step's trace data and layout (plotly ``update``)."""
    return [dict(method="update", label=lab, args=[data, lay]) for lab, (data, lay) in zip(labels, steps)]


def slider_figure(
    values: Sequence[Any],
    make_traces: Callable[[Any], Sequence[Any]],
    *,
    label: str,
    active: int = 0,
    layout_for: Callable[[Any], Mapping[str, Any]] | None = None,
    step_labels: Sequence[str] | None = None,
    **layout: Any,
) -> go.Figure:
    """A figure with a plotly slider over ``values``.

    ``make_traces(value)`` returns the traces for one slider position; every
    position must return the same number of traces, whose ``x``, ``y``,
    ``text``, ``customdata``, ``name`` and ``hovertext`` may change. Each slider
    step carries the new data and applies it with plotly's ``update`` method,
    in the browser, with no kernel. ``layout_for(value)`` may return layout
    changes for that step (a title, an axis range). ``layout`` is applied once.
    """
    fig, steps = _build_steps(values, make_traces, layout_for, active)
    _paper_legend(layout, default=LEGEND_ABOVE)  # the slider sits below the plot
    labels = list(step_labels) if step_labels is not None else [str(v) for v in values]
    if len(labels) != len(values):
        raise ValueError(f"{len(labels)} step labels for {len(values)} values")
    fig.update_layout(
        sliders=[
            dict(
                active=active,
                currentvalue=dict(prefix=f"{label} = ", font=dict(size=15)),
                pad=dict(t=65, b=10),
                steps=_control_steps(labels, steps),
            )
        ],
        **layout,
    )
    return fig


def dropdown_figure(
    options: Mapping[str, Any],
    make_traces: Callable[[Any], Sequence[Any]],
    *,
    active: int = 0,
    layout_for: Callable[[Any], Mapping[str, Any]] | None = None,
    x: float = 0.0,
    y: float = 1.03,
    **layout: Any,
) -> go.Figure:
    """A figure with a plotly dropdown menu: ``options`` maps menu labels to values.

    Same contract as :func:`slider_figure` for ``make_traces`` and ``layout_for``.
    The menu sits just above the plot's top left corner (``x``, ``y`` in paper
    coordinates, anchored at its bottom left), in a top margin of at least 60 px;
    the legend stays below the plot, so the open menu never hides it.
    """
    labels = list(options)
    fig, steps = _build_steps([options[k] for k in labels], make_traces, layout_for, active)
    _paper_legend(layout)
    margin = dict(layout.pop("margin", None) or {})
    margin["t"] = max(60, margin.get("t", 0))
    layout["margin"] = margin
    fig.update_layout(
        updatemenus=[
            dict(
                type="dropdown",
                active=active,
                x=x,
                y=y,
                xanchor="left",
                yanchor="bottom",
                buttons=_control_steps(labels, steps),
            )
        ],
        **layout,
    )
    return fig


def wrap_label(text: str, width: int = 40) -> str:
    """``text`` broken into lines of at most about ``width`` characters with ``<br>``, at spaces.

    Plotly never wraps a legend entry; a long one runs off a phone screen.
    """
    lines: list[str] = []
    for word in text.split(" "):
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return "<br>".join(lines)


# --- tables ---

_CELL_STYLE = "padding:2px 10px;text-align:right"


def html_table_from_cells(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An HTML ``<table>``: ``header`` is escaped, the cells of ``rows`` are HTML already (not escaped).

    A raw ``J_1`` in a header becomes inline MathJax ``\\(J_{1}\\)`` (:func:`subscripts_tex`);
    it is typeset where the table sits in a ``mathjax_process`` element (:func:`html_table`).
    """
    head = "".join(f"<th style='{_CELL_STYLE}'>{html.escape(subscripts_tex(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td style='{_CELL_STYLE}'>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_table(records: Sequence[Mapping[str, Any]]) -> str:
    """An HTML table of ``records`` (one dict per row, the first row's keys as columns, values escaped), scrollable.

    The wrapper carries MathJax's ``mathjax_process`` class, so inline math written
    as ``\\(...\\)`` in a cell is typeset on the page (cell outputs are otherwise skipped).
    """
    if not records:
        return "<p>(no rows)</p>"
    header = list(records[0])
    rows = [[html.escape(subscripts_tex(str(r.get(h, "")))) for h in header] for r in records]
    return (f'<div class="mathjax_process" style="overflow-x:auto;font-size:0.85em">'
            f'{html_table_from_cells(header, rows)}</div>')


def table(records: Sequence[Mapping[str, Any]]) -> HTML:
    """:func:`html_table` of ``records`` as an ``IPython.display.HTML`` object, for a chapter to display."""
    from IPython.display import HTML

    return HTML(html_table(records))



def frame_table(rows: Any, **to_html: Any) -> HTML:
    """A pandas table (``rows``: a DataFrame, or records for one) for display, headers typeset like :func:`html_table`.

    ``to_html`` goes to ``DataFrame.to_html`` (``index=False`` unless given). The
    table sits in a ``mathjax_process`` box that scrolls sideways when it is wider
    than the text column.
    """
    import pandas as pd
    from IPython.display import HTML

    frame = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    frame.columns = [subscripts_tex(str(c)) for c in frame.columns]
    to_html.setdefault("index", False)
    return HTML(f'<div class="mathjax_process" style="overflow-x:auto">{frame.to_html(**to_html)}</div>')


setup()
