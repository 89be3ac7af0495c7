"""The live plumbing every explorer shares: controls in, a plotly figure and a caption out.

An explorer lays out ipywidgets controls above two outputs: ``message`` (an
``ipywidgets.HTML``: a one-line caption, or the reason nothing can be
computed) and ``plot`` (an ``ipywidgets.Output`` holding the figure). On
every change of a control it recomputes and *replaces* the figure: the
Output's ``outputs`` are set to the figure's MIME bundle from the book's
plotly renderer (:class:`maxpo.figures.viz.BookRenderer`), which JupyterLab draws
with its plotly extension. Nothing is appended, so the cell never grows, and
no kernel-side ``display`` is needed (the explorers also work when driven
from plain Python, as the tests do).

Bad input (non-numeric text, a K the method refuses, a value too large for
float64, ...) raises ``ValueError`` in the computation (an ``ArithmeticError``
or a result that is not finite is reported the same way, as a last resort);
the explorer shows the message in place,
in red, clears the stale figure, and keeps running: no traceback.
"""
from __future__ import annotations

import html
import math
import time
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go

from maxpo.figures import viz

__all__ = ["Explorer", "fmt"]


def fmt(v: float | None) -> str:
    """A number for a caption: 4 significant digits, scientific only when very small or large."""
    if v is None:
        return "n/a"
    if v == 0:
        return "0"
    return f"{v:.4g}" if 1e-3 <= abs(v) < 1e4 else f"{v:.3e}"


def _all_finite(value: Any) -> bool:
    """Whether every float in ``value`` (nested dicts, lists and tuples) is finite."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_all_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_all_finite(v) for v in value)
    return True


def _error_html(message: str) -> str:
    return f"<p style='color:#b03a48'><b>Cannot compute:</b> {html.escape(message)}</p>"


class Explorer:
    """Base class: lay out the controls, recompute on every change, show a figure or an error.

    A subclass creates its controls, then calls :meth:`_start`. It defines
    ``_compute`` (the result, or ``ValueError`` with a message for the reader),
    ``_figure`` (the result as a plotly figure) and ``_caption`` (a short HTML
    line under the controls). After each update: ``result`` and ``figure`` hold
    the last result (``None`` after an error, whose message is in ``error``) and
    ``update_seconds`` the wall time of the update (computation and figure).
    """

    ui: widgets.Widget
    message: widgets.HTML
    plot: widgets.Output
    result: Any
    figure: go.Figure | None
    error: str | None
    update_seconds: float

    def _start(self, rows: Sequence[widgets.Widget], controls: Sequence[widgets.Widget]) -> None:
        """Show ``rows`` above the outputs, recompute whenever a control in ``controls`` changes, compute once."""
        self.message = widgets.HTML()
        self.plot = widgets.Output(layout=widgets.Layout(min_height=f"{viz.DEFAULT_HEIGHT}px"))
        self.result, self.figure, self.error, self.update_seconds = None, None, None, 0.0
        self.ui = widgets.VBox([*rows, self.message, self.plot])
        for c in controls:
            c.observe(lambda _change: self.update(), names="value")
        self.update()

    def update(self) -> None:
        """Recompute ``result`` from the controls and show its figure (or the error message)."""
        start = time.perf_counter()
        try:
            result = self._compute()
            if not _all_finite(result):
                raise ValueError("the result is not finite (inf or nan): the values are too large for float64")
            figure = self._figure(result)
        except (ValueError, ArithmeticError) as err:  # ArithmeticError: overflow, division by zero
            text = str(err) if isinstance(err, ValueError) else f"{type(err).__name__}: {err}"
            self.result, self.figure, self.error = None, None, text
            self.message.value = _error_html(self.error)
            self.plot.outputs = ()
        else:
            self.result, self.figure, self.error = result, figure, None
            self.message.value = self._caption(result)
            bundle = viz.BookRenderer().to_mimebundle(figure.to_dict())
            self.plot.outputs = ({"output_type": "display_data", "data": bundle, "metadata": {}},)
        self.update_seconds = time.perf_counter() - start

    def _compute(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def _figure(self, result: Any) -> go.Figure:  # pragma: no cover - overridden
        raise NotImplementedError

    def _caption(self, result: Any) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def static_html(self) -> str:
        """The explorer for a page with no kernel behind it (:mod:`maxpo.explorers.static`)."""
        raise NotImplementedError  # pragma: no cover - overridden

    def _ipython_display_(self) -> None:
        """In a live session the ipywidgets; in a book build the static explorer, which needs no kernel."""
        from IPython.display import HTML, display

        display(HTML(self.static_html()) if viz.building_book() else self.ui)
