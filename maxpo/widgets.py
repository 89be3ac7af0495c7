"""ipywidgets explorers for live Jupyter sessions (they need a running kernel).

Each explorer is a small class: its controls are public attributes (ipywidgets),
``ui`` is the box to display, ``result`` holds the numbers of the last update
(``None`` after an error, whose message is in ``error``) and ``output`` (an
``ipywidgets.HTML``) shows them. The numbers come from pure
functions in this module (:func:`advantage_summary`, :func:`variance_summary`,
:func:`precision_summary`), which the tests call directly; the tests also drive
the explorers by setting control values from Python.

* :class:`AdvantageExplorer` -- type rewards, choose K and a method: the
  advantages, their sum, their mean and variance across the group.
* :class:`VarianceExplorer` -- a categorical policy (rewards and probabilities
  per action), B, K: for every max@K method the exact expected gradient, the
  total variance of the gradient estimate, and the unified-view offset.
* :class:`PrecisionExplorer` -- B, K, reward offset: float32 error and
  centering error of the package against an all-float32 pipeline.

In the static HTML book the controls are drawn from saved widget state, but
changing them does nothing: there is no Python to run the callbacks.
"""
from __future__ import annotations

import html
import math
from fractions import Fraction
from typing import Any, Sequence

import ipywidgets as widgets
import torch

import maxpo
from maxpo import numerics, reference, unified
from maxpo.viz import html_table_from_cells

__all__ = [
    "AdvantageExplorer",
    "PrecisionExplorer",
    "VarianceExplorer",
    "advantage_summary",
    "parse_numbers",
    "precision_summary",
    "variance_summary",
]

#: Methods whose target is max@K and that accept real rewards (the explorers' default choice).
MAXK_METHODS = ("maxpo", "pkpo_s", "pkpo_loo", "pkpo_loo1", "canonical")


def parse_numbers(text: str) -> list[float]:
    """Parse ``"0.1, 0.3 1/2"`` (commas or spaces; decimals or fractions) into floats."""
    items = [t for t in text.replace(",", " ").split() if t]
    if not items:
        raise ValueError("enter at least one number")
    out = []
    for t in items:
        try:
            out.append(float(Fraction(t)))
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"{t!r} is not a number (use decimals like 0.5 or fractions like 1/2)") from None
    return out


# --------------------------------------------------------------------------- pure summaries
def advantage_summary(rewards: Sequence[float], k: int, method: str) -> dict[str, Any]:
    """Advantages of one group and their summary statistics.

    Returns ``advantages`` (list), ``sum``, ``mean``, ``variance`` (population
    variance across the group), ``abs_sum``, and ``rho_hat`` (the max@K estimate,
    ``None`` if ``k > B``). Raises ``ValueError`` with the package's message if
    the method does not accept this input.
    """
    a = maxpo.advantages(torch.tensor(list(rewards), dtype=torch.float64), k, method)
    mean = float(a.mean())
    return {
        "advantages": a.tolist(),
        "sum": float(a.sum()),
        "mean": mean,
        "variance": float(((a - mean) ** 2).mean()),
        "abs_sum": float(a.abs().sum()),
        "rho_hat": float(maxpo.maxk_estimate(list(rewards), k)) if k <= len(rewards) else None,
    }


def variance_summary(rewards: Sequence[float], probs: Sequence[float], b: int, k: int,
                     methods: Sequence[str] = MAXK_METHODS) -> dict[str, dict[str, float]]:
    r"""Per method: exact gradient bias, total variance and unified-view offset for a categorical policy.

    Enumerates every batch (float64). For each method that accepts ``(B, K)``:
    ``bias`` = :math:`\max_c |E[\hat g]_c - \lambda \nabla_c J_K|` (:math:`\lambda` = B/K for
    ``canonical``, else 1), ``variance`` = :math:`E\|\hat g - E\hat g\|^2`,
    ``mean_abs_sum`` = :math:`E|\sum_i A_i|`, ``offset`` = the mean over actions of
    :math:`E[A_i|y_i=a] - \lambda\frac{K}{B}A_K(a)` and ``offset_spread`` its range over
    actions (0 when the unified view holds).
    """
    p = [float(v) for v in probs]
    if len(p) != len(rewards):
        raise ValueError(f"{len(rewards)} rewards but {len(p)} probabilities: give one per action")
    if any(v <= 0 for v in p) or abs(sum(p) - 1) > 1e-9:
        raise ValueError(f"probabilities must be positive and sum to 1 (they sum to {sum(p):.6g})")
    exact_p = [Fraction(v) for v in p]
    exact_r = [Fraction(v) for v in rewards]
    grad = [float(g) for g in reference.maxk_objective_gradient(exact_p, exact_r, k)]
    a_k = [float(v) for v in reference.true_maxk_advantage(exact_p, exact_r, k)]
    out: dict[str, dict[str, float]] = {}
    for name in methods:
        if maxpo.METHODS[name].check(b, k) is not None:
            continue
        lam = b / k if name == "canonical" else 1.0
        mom = unified.gradient_moments(p, rewards, b, k, name)
        diffs = [m - lam * k / b * a for m, a in zip(mom["conditional_mean"], a_k)]
        out[name] = {
            "bias": max(abs(m - lam * g) for m, g in zip(mom["mean"], grad)),
            "variance": mom["total_variance"],
            "mean_abs_sum": mom["mean_abs_sum"],
            "offset": sum(diffs) / len(diffs),
            "offset_spread": max(diffs) - min(diffs),
        }
    return out


def precision_summary(b: int, k: int, offset: float = 0.0, groups: int = 8, seed: int = 0) -> dict[str, dict[str, float]]:
    """Float32 relative error and centering error of three pipelines on uniform rewards + ``offset``.

    The reference is the package in float64 on the *same* float32 rewards, so
    only the computation's error is measured, not the rounding of the input.
    Pipelines: ``package`` (float32 in and out, float64 inside), ``float32``
    (every step in float32, log-space weights, shifted), ``float32, no shift``.
    """
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(groups, b, generator=gen, dtype=torch.float64) + offset).float()
    ref = maxpo.advantages(x.double(), k)
    runs = {
        "package": maxpo.advantages(x, k),
        "float32": numerics.closed_form_maxpo(x, k, torch.float32),
        "float32, no shift": numerics.closed_form_maxpo(x, k, torch.float32, shift=False),
    }
    return {name: {"relative_error": numerics.relative_error(a, ref), "centering_error": numerics.centering_error(a)}
            for name, a in runs.items()}


# --------------------------------------------------------------------------- rendering
def _fmt(v: float | None) -> str:
    if v is None:
        return "n/a"
    if v == 0:
        return "0"
    return f"{v:.4g}" if 1e-3 <= abs(v) < 1e4 else f"{v:.3e}"


def _error(message: str) -> str:
    return f"<p style='color:#b03a48'><b>Cannot compute:</b> {html.escape(message)}</p>"


class _Explorer:
    """Common plumbing: lay out the controls, recompute on every change, keep ``result`` and ``error``.

    A subclass creates its controls, then calls :meth:`_start`; it defines
    ``_compute`` (the result, or ``ValueError`` with a message for the reader)
    and ``_render`` (the result as HTML).
    """

    ui: widgets.Widget
    output: widgets.HTML
    result: Any
    error: str | None

    def _start(self, rows: Sequence[widgets.Widget], controls: Sequence[widgets.Widget]) -> None:
        """Show ``rows`` above the output, recompute whenever a control in ``controls`` changes, compute once."""
        self.output = widgets.HTML()
        self.result, self.error = None, None
        self.ui = widgets.VBox([*rows, self.output])
        for c in controls:
            c.observe(lambda _change: self.update(), names="value")
        self.update()

    def update(self) -> None:
        """Recompute ``result`` from the controls and show it (or the error message)."""
        try:
            result = self._compute()
        except ValueError as err:
            self.result, self.error = None, str(err)
            self.output.value = _error(self.error)
            return
        self.result, self.error = result, None
        self.output.value = self._render(result)

    def _compute(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def _render(self, result: Any) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.ui)


class AdvantageExplorer(_Explorer):
    """Type rewards, pick K and a method; see advantages, their sum and variance.

    Controls: ``rewards`` (Text), ``k`` (IntSlider, its maximum follows B),
    ``method`` (Dropdown over :data:`maxpo.METHODS`). ``result`` is the dict of
    :func:`advantage_summary` (``None`` after an error, whose message is in ``error``).
    """

    def __init__(self, rewards: str = "0.1, 0.3, 0.5, 0.7, 0.9", k: int = 2, method: str = "maxpo") -> None:
        self.rewards = widgets.Text(value=rewards, description="rewards", continuous_update=False,
                                    layout=widgets.Layout(width="32em"))
        n = max(1, len(rewards.replace(",", " ").split()))
        self.k = widgets.IntSlider(value=min(k, n), min=1, max=n, description="K", continuous_update=False)
        self.method = widgets.Dropdown(options=list(maxpo.METHODS), value=method, description="method")
        self._start([self.rewards, widgets.HBox([self.k, self.method])], [self.rewards, self.k, self.method])

    def _compute(self) -> dict[str, Any]:
        r = parse_numbers(self.rewards.value)
        if self.k.max != len(r):
            self.k.max = len(r)  # clamps k.value, which triggers a nested update first
        self._rewards = r
        return advantage_summary(r, self.k.value, self.method.value)

    def _render(self, res: dict[str, Any]) -> str:
        rows = [[str(i + 1), _fmt(ri), _fmt(ai)] for i, (ri, ai) in enumerate(zip(self._rewards, res["advantages"]))]
        if abs(res["sum"]) <= 1e-12 * max(1.0, res["abs_sum"]):
            total = f"<b>0</b> up to float64 rounding ({_fmt(res['sum'])}): centred"
        else:
            total = f"<b>{_fmt(res['sum'])}</b>: not centred"
        return (
            html_table_from_cells(["sample", "reward", f"A ({self.method.value})"], rows)
            + f"<p>sum of advantages {total}; "
            f"mean {_fmt(res['mean'])}; variance across the group {_fmt(res['variance'])}; "
            f"max@K estimate {_fmt(res['rho_hat'])}</p>"
        )


class VarianceExplorer(_Explorer):
    """A categorical policy, B and K: exact bias, gradient variance and offset of each max@K method.

    Controls: ``rewards`` and ``probs`` (Text, one value per action), ``b`` and
    ``k`` (IntSliders), ``methods`` (SelectMultiple). ``result`` is the dict of
    :func:`variance_summary`. Enumerates ``actions ** B`` batches: keep it small.
    """

    def __init__(self, rewards: str = "0, 0.5, 1", probs: str = "1/2, 1/3, 1/6", b: int = 5, k: int = 2,
                 methods: Sequence[str] = MAXK_METHODS) -> None:
        self.rewards = widgets.Text(value=rewards, description="rewards", continuous_update=False)
        self.probs = widgets.Text(value=probs, description="probs", continuous_update=False)
        self.b = widgets.IntSlider(value=b, min=2, max=7, description="B", continuous_update=False)
        self.k = widgets.IntSlider(value=k, min=1, max=7, description="K", continuous_update=False)
        self.methods = widgets.SelectMultiple(options=list(MAXK_METHODS), value=tuple(methods),
                                              description="methods", rows=len(MAXK_METHODS))
        self._start([widgets.HBox([self.rewards, self.probs]), widgets.HBox([self.b, self.k]), self.methods],
                    [self.rewards, self.probs, self.b, self.k, self.methods])

    def _compute(self) -> dict[str, dict[str, float]]:
        r = parse_numbers(self.rewards.value)
        p = parse_numbers(self.probs.value)
        if len(p) ** self.b.value > 200_000:
            raise ValueError(f"{len(p)}^{self.b.value} batches: too many to enumerate here")
        if self.k.value > self.b.value:
            raise ValueError(f"K = {self.k.value} > B = {self.b.value}: no unbiased max@K estimate")
        return variance_summary(r, p, self.b.value, self.k.value, self.methods.value)

    def _render(self, result: dict[str, dict[str, float]]) -> str:
        rows = [[html.escape(name), _fmt(v["bias"]), _fmt(v["variance"]), _fmt(v["mean_abs_sum"]),
                 _fmt(v["offset"]), _fmt(v["offset_spread"])] for name, v in result.items()]
        skipped = [m for m in self.methods.value if m not in result]
        note = (f"<p>not defined at B = {self.b.value}, K = {self.k.value}: {', '.join(skipped)}</p>"
                if skipped else "")
        return html_table_from_cells(["method", "|E g - λ∇J_K|", "tr Var g", "E|ΣA|", "offset c",
                                      "c spread over actions"], rows) + note


class PrecisionExplorer(_Explorer):
    """B (as a power of two), K as a fraction of B, and a reward offset: float32 errors of three pipelines."""

    def __init__(self, log2_b: int = 10, k_fraction: float = 0.25, offset: float = 0.0) -> None:
        self.log2_b = widgets.IntSlider(value=log2_b, min=3, max=16, description="log2 B", continuous_update=False)
        self.k_fraction = widgets.FloatSlider(value=k_fraction, min=0.0, max=0.9, step=0.05, description="K / B",
                                              continuous_update=False)
        self.offset = widgets.FloatLogSlider(value=max(offset, 1e-3), base=10, min=-3, max=4,
                                             description="offset", continuous_update=False)
        self._start([widgets.HBox([self.log2_b, self.k_fraction, self.offset])],
                    [self.log2_b, self.k_fraction, self.offset])

    @property
    def b(self) -> int:
        return 2 ** self.log2_b.value

    @property
    def k_value(self) -> int:
        return min(self.b - 1, max(1, math.floor(self.k_fraction.value * self.b)))

    def _compute(self) -> dict[str, dict[str, float]]:
        return precision_summary(self.b, self.k_value, self.offset.value, groups=max(1, 2 ** 14 // self.b))

    def _render(self, result: dict[str, dict[str, float]]) -> str:
        rows = [[html.escape(name), _fmt(v["relative_error"]), _fmt(v["centering_error"])]
                for name, v in result.items()]
        return (f"<p>B = {self.b}, K = {self.k_value}, rewards uniform on [offset, offset + 1]</p>"
                + html_table_from_cells(["pipeline", "relative error", "|ΣA| / Σ|A|"], rows))
