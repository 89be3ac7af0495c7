"""Conceptual diagrams for the book, as self-contained inline SVG (no JavaScript, no network).

Each function returns an SVG document as a string with a ``viewBox`` and no fixed
width, so it scales to the text column (``width: 100%``) at 1280 px and at 390 px;
:func:`html` wraps one for display in a chapter. The numbers a diagram shows (subset
maxima, their means, the silent tie counts, the weights) are computed here from the
arguments, with exact fractions, not typed by hand.

* :func:`pipeline` -- prompt, samples, rewards, sort, signals and baselines, advantages, loss.
* :func:`k_subsets` -- every ``K``-subset of a small group and its maximum; their mean is
  the max@K estimate :math:`\\hat\\rho`.
* :func:`q_value` -- :math:`Q_i`, the best of ``K`` with sample ``i`` fixed: the
  subsets that contain ``i`` and the mean of their maxima.
* :func:`zero_signal_zone` -- the number ``t`` of top ties against the threshold
  :math:`B-K+1` where MaxPO falls silent.
* :func:`mixture_weights` -- MaxRL's harmonic weights :math:`1/K` over :math:`K = 1..B-1`.

This module imports nothing of maxpo (it is part of the figures layer).
"""
from __future__ import annotations

import html as _html
import itertools
import re
from collections.abc import Sequence
from fractions import Fraction

__all__ = ["html", "k_subsets", "mixture_weights", "pipeline", "q_value", "zero_signal_zone"]

INK = "#222"
ACCENT = "#1f6fb2"  # the book's MaxPO blue family
MUTED = "#8a8a8a"
SILENT = "#f4d6d2"
LIVE = "#d8e8f5"
FONT = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif"


_SCRIPT = re.compile(r"([_^])(?:\{([^}]*)\}|(\w))")


def _esc(text: str) -> str:
    """Escape for XML, then typeset ``x_i``, ``x_{ij}``, ``x^{(K)}`` as SVG sub- and superscripts."""
    def script(m: re.Match[str]) -> str:
        shift = "sub" if m.group(1) == "_" else "super"
        return f'<tspan baseline-shift="{shift}" font-size="72%">{m.group(2) or m.group(3)}</tspan>'

    return _SCRIPT.sub(script, _html.escape(text, quote=True))


def _frac(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"


def _num(x: Fraction) -> str:
    """A reward as a short decimal when it has one, else as a fraction."""
    for digits in (1, 2):
        if x * 10 ** digits == int(x * 10 ** digits):
            return f"{float(x):.{digits}f}" if x.denominator != 1 else str(x.numerator)
    return _frac(x)


class _Svg:
    def __init__(self, width: int, height: int, title: str) -> None:
        self.w, self.h = width, height
        self.parts = [f"<title>{_esc(title)}</title>",
                      '<defs><marker id="arr" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
                      f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{INK}"/>'
                      "</marker></defs>"]

    def rect(self, x: float, y: float, w: float, h: float, fill: str = "white", stroke: str = INK,
             rx: float = 6, dash: bool = False) -> None:
        extra = ' stroke-dasharray="5,4"' if dash else ""
        self.parts.append(f'<rect x="{x:g}" y="{y:g}" width="{w:g}" height="{h:g}" rx="{rx:g}" fill="{fill}" '
                          f'stroke="{stroke}" stroke-width="1.5"{extra}/>')

    def circle(self, x: float, y: float, r: float, fill: str, stroke: str = INK) -> None:
        self.parts.append(f'<circle cx="{x:g}" cy="{y:g}" r="{r:g}" fill="{fill}" stroke="{stroke}" '
                          'stroke-width="1.5"/>')

    def text(self, x: float, y: float, s: str, size: float = 17, anchor: str = "middle", weight: str = "normal",
             fill: str = INK, italic: bool = False) -> None:
        style = ' font-style="italic"' if italic else ""
        self.parts.append(f'<text x="{x:g}" y="{y:g}" font-size="{size:g}" text-anchor="{anchor}" '
                          f'font-weight="{weight}" fill="{fill}"{style} dominant-baseline="middle">{_esc(s)}</text>')

    def arrow(self, x1: float, y1: float, x2: float, y2: float, stroke: str = INK) -> None:
        self.parts.append(f'<line x1="{x1:g}" y1="{y1:g}" x2="{x2:g}" y2="{y2:g}" stroke="{stroke}" '
                          'stroke-width="1.8" marker-end="url(#arr)"/>')

    def line(self, x1: float, y1: float, x2: float, y2: float, stroke: str = MUTED, width: float = 1.5,
             dash: bool = False) -> None:
        extra = ' stroke-dasharray="6,4"' if dash else ""
        self.parts.append(f'<line x1="{x1:g}" y1="{y1:g}" x2="{x2:g}" y2="{y2:g}" stroke="{stroke}" '
                          f'stroke-width="{width:g}"{extra}/>')

    def render(self) -> str:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {self.w} {self.h}" role="img" '
                f'class="maxpo-diagram" style="width:100%;height:auto;max-width:{self.w}px;{FONT}">'
                + "".join(self.parts) + "</svg>")


def html(svg: str) -> object:
    """Wrap an SVG string for display in a notebook cell (an ``IPython.display.HTML``)."""
    from IPython.display import HTML

    return HTML(f'<div class="maxpo-diagram-box" style="max-width:100%;overflow:hidden">{svg}</div>')


def pipeline() -> str:
    """The path from one prompt to the loss, in three rows of boxes joined by arrows."""
    rows = [
        [("prompt x", "one question"), ("B samples", "y_1, \u2026, y_B ~ \u03c0(\u00b7|x)"),
         ("rewards", "r_1, \u2026, r_B")],
        [("sort", "order r once, O(B log B)"), ("s_i and b_i", "b_i avoids sample i")],
        [("advantage", "A_i = s_i \u2212 b_i"), ("loss", "\u2212\u03a3_i A_i log \u03c0(y_i|x)")],
    ]
    svg = _Svg(600, 330, "From a prompt to the loss")
    box_w, box_h, gap_y = 180, 70, 110
    for ri, row in enumerate(rows):
        n = len(row)
        gap = (600 - n * box_w) / (n + 1)
        y = 15 + ri * gap_y
        xs = [gap + j * (box_w + gap) for j in range(n)]
        for j, (head, sub) in enumerate(row):
            fill = LIVE if head.startswith(("s_i", "advantage")) else "white"
            svg.rect(xs[j], y, box_w, box_h, fill=fill)
            svg.text(xs[j] + box_w / 2, y + 24, head, size=17, weight="bold")
            svg.text(xs[j] + box_w / 2, y + 49, sub, size=15)
            if j:
                svg.arrow(xs[j - 1] + box_w + 2, y + box_h / 2, xs[j] - 3, y + box_h / 2)
        if ri + 1 < len(rows):  # from the last box of this row to the first box of the next
            nxt_n = len(rows[ri + 1])
            nxt_gap = (600 - nxt_n * box_w) / (nxt_n + 1)
            svg.arrow(xs[-1] + box_w / 2, y + box_h + 2, nxt_gap + box_w / 2 + 40, y + gap_y - 3)
    return svg.render()


def _checked_rewards(rewards: Sequence[Fraction | int | str], k: int) -> list[Fraction]:
    r = [Fraction(v) for v in rewards]
    if not 1 <= k <= len(r):
        raise ValueError(f"need 1 <= K <= B = {len(r)}, got K = {k}")
    return r


def _sample_row(svg: _Svg, r: Sequence[Fraction], y: float, highlight: int | None = None) -> list[float]:
    b = len(r)
    step = svg.w / (b + 1)
    xs = [step * (j + 1) for j in range(b)]
    for j, x in enumerate(xs):
        svg.circle(x, y, 21, ACCENT if j == highlight else LIVE)
        svg.text(x, y, _num(r[j]), size=15, fill="white" if j == highlight else INK, weight="bold")
        svg.text(x, y - 34, f"y_{{{j + 1}}}", size=15, fill=MUTED)
    return xs


def _subset_cards(svg: _Svg, r: Sequence[Fraction], subsets: Sequence[tuple[int, ...]], y: float,
                  fixed: int | None = None) -> None:
    n = len(subsets)
    per_row = min(n, 6)
    card_w, card_h = 86, 78
    for idx, s in enumerate(subsets):
        row, col = divmod(idx, per_row)
        in_row = min(per_row, n - row * per_row)
        gap = (svg.w - in_row * card_w) / (in_row + 1)
        x = gap + col * (card_w + gap)
        yy = y + row * (card_h + 16)
        svg.rect(x, yy, card_w, card_h, fill="white", stroke=MUTED)
        top = max(r[j] for j in s)
        label = "{" + ",".join(str(j + 1) for j in s) + "}"
        svg.text(x + card_w / 2, yy + 20, label, size=15, weight="bold" if fixed in s else "normal")
        svg.text(x + card_w / 2, yy + 52, f"max {_num(top)}", size=15, fill=ACCENT, weight="bold")


def k_subsets(rewards: Sequence[Fraction | int | str], k: int) -> str:
    r"""A group, every ``K``-subset as a card with its maximum, and :math:`\hat\rho` = their mean."""
    r = _checked_rewards(rewards, k)
    subsets = list(itertools.combinations(range(len(r)), k))
    if len(subsets) > 12:
        raise ValueError(f"C(B, K) = {len(subsets)} cards do not fit; use at most 12")
    rows = (len(subsets) + 5) // 6
    svg = _Svg(600, 190 + rows * 94, f"Every {k}-subset of {len(r)} samples and its maximum")
    _sample_row(svg, r, 55)
    svg.text(300, 100, f"all C({len(r)}, {k}) = {len(subsets)} subsets of size K = {k}", size=15, fill=MUTED)
    _subset_cards(svg, r, subsets, 118)
    rho = sum((max(r[j] for j in s) for s in subsets), Fraction(0)) / len(subsets)
    svg.text(300, 140 + rows * 94, f"\u03c1\u0302 = mean of the {len(subsets)} maxima = {_frac(rho)}", size=17,
             weight="bold")
    return svg.render()


def q_value(rewards: Sequence[Fraction | int | str], k: int, i: int) -> str:
    r""":math:`Q_i`: the subsets of size ``K`` that contain sample ``i`` (0-based), their maxima and mean."""
    r = _checked_rewards(rewards, k)
    if not 0 <= i < len(r):
        raise ValueError(f"sample index i = {i} is outside 0..{len(r) - 1}")
    subsets = [s for s in itertools.combinations(range(len(r)), k) if i in s]
    if len(subsets) > 12:
        raise ValueError(f"{len(subsets)} cards do not fit; use at most 12")
    rows = (len(subsets) + 5) // 6
    svg = _Svg(600, 190 + rows * 94, f"Q for sample {i + 1}: the best of {k} with sample {i + 1} fixed")
    _sample_row(svg, r, 55, highlight=i)
    svg.text(300, 100, f"sample {i + 1} fixed, K \u2212 1 = {k - 1} companions drawn from the other {len(r) - 1}",
             size=15, fill=MUTED)
    _subset_cards(svg, r, subsets, 118, fixed=i)
    q = sum((max(r[j] for j in s) for s in subsets), Fraction(0)) / len(subsets)
    svg.text(300, 140 + rows * 94, f"Q_{{{i + 1}}} = mean of these {len(subsets)} maxima = {_frac(q)}", size=17,
             weight="bold")
    return svg.render()


def zero_signal_zone(b: int, k: int) -> str:
    """The tie count ``t`` from 1 to ``B``: informative for ``t <= B-K``, silent from ``B-K+1`` on."""
    if not 1 <= k <= b - 1:
        raise ValueError(f"MaxPO needs 1 <= K <= B-1; got B = {b}, K = {k}")
    svg = _Svg(600, 250, f"The zero-signal zone at B = {b}, K = {k}")
    cell = min(60, 520 / b)
    x0 = (600 - cell * b) / 2
    threshold = b - k + 1
    svg.text(300, 22, f"t = number of samples tied at the top (B = {b}, K = {k})", size=16)
    for t in range(1, b + 1):
        x = x0 + (t - 1) * cell
        svg.rect(x, 45, cell - 4, 50, fill=SILENT if t >= threshold else LIVE, stroke=MUTED, rx=4)
        svg.text(x + (cell - 4) / 2, 70, str(t), size=17, weight="bold")
    xb = x0 + (threshold - 1) * cell - 2
    svg.line(xb, 36, xb, 150, stroke=INK, width=2.5)
    svg.text(xb, 165, f"B \u2212 K + 1 = {threshold}", size=16, weight="bold")
    svg.text(x0 + (xb - x0) / 2, 120, "informative", size=15, fill=ACCENT)
    svg.text(xb + (x0 + b * cell - xb) / 2, 120, "silent: A = 0", size=15, fill="#a33")
    svg.text(300, 200, f"t \u2265 {threshold}: at most K \u2212 1 = {k - 1} samples below the top,", size=15)
    svg.text(300, 225, "so every K-subset holds a top sample and every maximum is the same", size=15)
    return svg.render()


def mixture_weights(b: int) -> str:
    """MaxRL's weights :math:`w_K = 1/K` for ``K = 1..B-1`` as bars; ``K = B`` is absent."""
    if b < 2:
        raise ValueError(f"need B >= 2, got {b}")
    ks = list(range(1, b))
    svg = _Svg(600, 260, f"MaxRL's weights over K at B = {b}")
    slot = 520 / b
    x0, base, top_h = 50, 200, 150
    svg.line(x0 - 10, base, x0 + slot * b, base, stroke=INK)
    for j, kk in enumerate(ks + [b]):
        x = x0 + j * slot + slot * 0.15
        if kk == b:
            svg.rect(x, base - 30, slot * 0.7, 30, fill="white", stroke=MUTED, rx=2, dash=True)
            svg.text(x + slot * 0.35, base - 45, "none", size=14, fill=MUTED)
        else:
            w = Fraction(1, kk)
            h = top_h * float(w)
            svg.rect(x, base - h, slot * 0.7, h, fill=ACCENT if kk == 1 else LIVE, stroke=INK, rx=2)
            svg.text(x + slot * 0.35, base - h - 14, _frac(w), size=14)
        svg.text(x + slot * 0.35, base + 18, str(kk), size=15)
    svg.text(300, 16, "w_K = 1/K for K = 1, \u2026, B \u2212 1: MaxRL = \u03a3_K (1/K) A^{(K)}", size=16, weight="bold")
    svg.text(300, 245, f"K (the dashed slot K = B = {b} has no unbiased estimator)", size=15, fill=MUTED)
    return svg.render()
