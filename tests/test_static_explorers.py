"""The explorers of the static book work in a browser with no Python behind them: every control, every page.

Headless Chromium (Debian's, through playwright), network cut off. Two levels:

* each explorer's :meth:`static_html` alone on a page with plotly.js (no
  book build needed): every control is moved and what is drawn (the SVG path
  data of the figure's traces, its titles, the caption) must change; the numbers shown are checked
  against oracles that share no code with the page -- the advantages the
  browser computes from dragged rewards against :func:`maxpo.advantages`,
  the max@K estimate in a caption against brute force over K-subsets
  (:func:`maxpo.reference.maxk_ustat`);
* the built book (marked ``book``): every chapter page holds no ipywidgets
  (whose controls would compute nothing), every theory chapter holds a static
  explorer, and every control of every static explorer changes its figure.
"""
from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import plotly
import pytest
import torch

import maxpo
from maxpo import explorers, reference
from maxpo.explorers.base import fmt

from conftest import chapter_docnames, chapter_id, local_only_page

pytestmark = pytest.mark.browser

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
CONTROLS = "[data-mx], input[data-mx-r], input[data-mx-k], select[data-mx-m]"
THEORY = ["book/objective", "book/policy_gradient", "book/baselines", "book/canonical", "book/computing"]
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

EXPLORERS = {
    "estimate": lambda: explorers.EstimateExplorer("0.2, 0.9, 0.4, 0.4, 0.1, 0.7, 0.3, 0.6", k=3),
    "gradient": lambda: explorers.GradientExplorer(),
    "advantage": lambda: explorers.AdvantageExplorer("0.1, 0.3, 0.5, 0.7, 0.9", k=2, method="maxpo"),
    "variance": lambda: explorers.VarianceExplorer(rewards="0, 0.5, 1", probs="1/2, 1/3, 1/6", b=5, k=2),
    "precision": lambda: explorers.PrecisionExplorer(log2_b=10, k_fraction=0.25, offset=1000.0),
}


@pytest.fixture
def page(browser: object):
    with local_only_page(browser, 1280, 1400) as (pg, blocked, errors):
        yield pg
    assert not errors, f"JavaScript errors: {errors}"
    assert not blocked, f"requests beyond 127.0.0.1: {blocked}"


def _drawn(page: object, explorer: object) -> str:
    """The figure as drawn (the SVG path data of every trace and the figure's texts) and the caption under the
    controls, or '' when the figure is hidden (an error in place).

    The caption counts: policy_gradient's B changes the total variance and the number of batches, not the bars
    (the signal is unbiased for every B: that is what the figure shows).
    """
    return explorer.evaluate("""root => { const p = root.querySelector('.mx-plot');
        if (p.style.display === 'none') return '';
        return Array.from(p.querySelectorAll('g.trace path, g.trace text, .gtitle, .annotation-text')).map(
            e => e.getAttribute('d') || e.textContent).join('|')
            + '||' + root.querySelector('.mx-caption').textContent; }""")


def _key(explorer: object) -> str:
    """Which state the explorer shows (its controls' positions, as the page's script records them)."""
    return explorer.evaluate("root => root.querySelector('.mx-plot').getAttribute('data-mx-key')")


def _set(control: object, index: int) -> None:
    """Move a control as a reader does: a slider's value (an input event), a menu's option."""
    if control.evaluate("e => e.tagName") == "SELECT":
        control.select_option(index=index)
    else:
        control.evaluate("(e, v) => { e.value = String(v); e.dispatchEvent(new Event('input', {bubbles: true})); }",
                         index)


def _positions(control: object) -> list[int]:
    if control.evaluate("e => e.tagName") == "SELECT":
        return list(range(control.evaluate("e => e.options.length")))
    lo, hi = control.evaluate("e => [Number(e.min), Number(e.max)]")
    return list(range(int(lo), int(hi) + 1))


def move_every_control(page: object, explorer: object, where: str) -> int:
    """Move each control of ``explorer`` away from its value; the figure must change. Returns the count."""
    controls = explorer.locator(CONTROLS)
    count = controls.count()
    assert count > 0, f"{where}: a static explorer without controls"
    assert _drawn(page, explorer), f"{where}: the explorer drew nothing at its starting values"
    for i in range(count):
        control = controls.nth(i)
        start = int(control.evaluate("e => e.tagName === 'SELECT' ? e.selectedIndex : Number(e.value)"))
        before, key = _drawn(page, explorer), _key(explorer)
        changed = False
        for pos in sorted(_positions(control), key=lambda p: abs(p - start)):  # nearest first
            if pos == start:
                continue
            _set(control, pos)
            after = _drawn(page, explorer)
            if after and after != before:
                changed = True
                break
        name = control.evaluate("e => e.parentNode.textContent.trim().split(/\\s/)[0]")
        assert changed, f"{where}: moving control {i} ({name}) never changed the figure"
        _set(control, start)
        assert _key(explorer) == key, f"{where}: moving control {i} back did not restore the state"
    return count


def _standalone(page: object, html: str) -> object:
    """``html`` in the body of a page that loads plotly.js first, as the book's pages do."""
    plotly_js = PLOTLY_JS.read_text(encoding="utf-8")
    page.set_content(f"<!doctype html><html><head><meta charset='utf-8'><script>{plotly_js}</script></head>"
                     f"<body>{html}</body></html>")
    page.wait_for_function("() => document.querySelector('.mx-plot g.trace') !== null")
    return page.locator(".mx-explorer").first


@pytest.mark.parametrize("name", list(EXPLORERS))
def test_every_control_of_a_static_explorer_changes_its_figure(page, name: str) -> None:
    explorer = _standalone(page, EXPLORERS[name]().static_html())
    moved = move_every_control(page, explorer, name)
    print(f"\n{name}: {moved} controls moved, each changed the figure")


def _number_after(caption: str, words: str) -> float:
    m = re.search(re.escape(words) + r"\s*([-+0-9.e]+)", caption)
    assert m, f"{words!r} not in {caption!r}"
    return float(m.group(1))


def test_dragged_rewards_give_the_package_advantages(page) -> None:
    """The worked example (B = 5, K = 2): drag rewards, change K and method; the bars are the package's numbers."""
    explorer = _standalone(page, EXPLORERS["advantage"]().static_html())
    sliders = explorer.locator("input[data-mx-r]")
    assert sliders.count() == 5
    methods = explorer.locator("select[data-mx-m] option").all_inner_texts()
    assert "MaxPO" in " ".join(methods), methods
    cases = [([3, 17, 17, 0, 20], 2, 0), ([10, 2, 19, 7, 7], 3, len(methods) - 1), ([0, 0, 20, 5, 11], 1, 1)]
    for positions, k, method_index in cases:
        for slider, pos in zip(sliders.all(), positions):
            _set(slider, pos)
        _set(explorer.locator("input[data-mx-k]"), k)
        explorer.locator("select[data-mx-m]").select_option(index=method_index)
        rewards = [Fraction(pos, 20) for pos in positions]  # the sliders' grid: 0 to 1 by 0.05
        shown = explorer.evaluate("root => root.querySelector('.mx-plot').data[0].y")
        label = methods[method_index]
        method = next(m for m in maxpo.METHODS if explorers.static.viz.method_label(m) == label)
        if maxpo.METHODS[method].check(5, k) is not None:
            assert "Cannot compute" in explorer.locator(".mx-caption").inner_text()
            continue
        want = maxpo.advantages(torch.tensor([float(r) for r in rewards], dtype=torch.float64), k, method).tolist()
        assert shown == pytest.approx(want, rel=1e-12, abs=1e-12), (positions, k, method)
        caption = explorer.locator(".mx-caption").inner_text()
        rho = float(reference.maxk_ustat(rewards, k))  # brute force over K-subsets, in fractions
        assert _number_after(caption, "max@K estimate") == pytest.approx(rho, rel=1e-3), caption
        assert fmt(rho) in caption
    # K = B with MaxPO: the reason, in place, and no figure
    explorer.locator("select[data-mx-m]").select_option(label=explorers.static.viz.method_label("maxpo"))
    _set(explorer.locator("input[data-mx-k]"), 5)
    assert "Cannot compute" in explorer.locator(".mx-caption").inner_text()
    assert _drawn(page, explorer) == ""


def test_a_grid_explorer_shows_the_brute_force_estimate(page) -> None:
    rewards = [Fraction(t) for t in "0.2 0.9 0.4 0.4 0.1 0.7 0.3 0.6".split()]
    explorer = _standalone(page, EXPLORERS["estimate"]().static_html())
    k_slider = explorer.locator("input[data-mx]").first
    for k in (1, 5, 8):
        _set(k_slider, k - 1)
        caption = explorer.locator(".mx-caption").inner_text()
        want = float(reference.maxk_ustat(rewards, k))
        assert f"K = {k} is {fmt(want)}" in caption, caption


# --------------------------------------------------------------------------- the built book
@pytest.mark.book
def test_no_dead_ipywidgets_and_an_explorer_per_theory_chapter(built_book) -> None:
    for docname in chapter_docnames():
        text = built_book.page(docname).read_text(encoding="utf-8")
        assert WIDGET_VIEW not in text, f"{docname}: ipywidgets on a static page compute nothing"
        assert "computes nothing" not in text, docname
        if docname in THEORY:
            assert "mx-explorer" in text, f"{docname}: no static explorer"


STATIC_PAGES = THEORY


@pytest.mark.book
@pytest.mark.parametrize("docname", STATIC_PAGES, ids=[chapter_id(d) for d in STATIC_PAGES])
def test_every_control_on_every_static_page_changes_its_figure(book_server, page, docname: str) -> None:
    page.goto(f"{book_server}/{docname}.html", wait_until="load")
    page.wait_for_function("() => document.querySelector('.mx-explorer .mx-plot g.trace') !== null")
    found = page.locator(".mx-explorer")
    assert found.count() >= 1
    for i in range(found.count()):
        explorer = found.nth(i)
        explorer.scroll_into_view_if_needed()
        move_every_control(page, explorer, f"{docname} explorer {i}")


@pytest.mark.parametrize("name", ["estimate", "gradient", "variance"])
def test_two_panels_stack_on_a_narrow_screen(browser, name: str) -> None:
    """Side by side in a 688 px column; one above the other in a 358 px one (a phone), also after a resize."""
    def panels(pg: object) -> list[dict]:
        return pg.evaluate("""() => ['xy', 'x2y2'].map(id => {
            const r = document.querySelector('.mx-plot .draglayer g.' + id + ' rect.nsewdrag').getBoundingClientRect();
            return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width}; })""")

    html = EXPLORERS[name]().static_html()
    with local_only_page(browser, 1280, 1400) as (pg, blocked, errors):
        explorer = _standalone(pg, f"<div id='col' style='width:688px'>{html}</div>")
        first, second = panels(pg)
        assert second["left"] >= first["right"] and abs(second["top"] - first["top"]) < 1, (first, second)
        pg.set_viewport_size({"width": 390, "height": 1400})
        pg.evaluate("() => { document.getElementById('col').style.width = '358px'; "
                    "window.dispatchEvent(new Event('resize')); }")
        pg.wait_for_timeout(300)
        first, second = panels(pg)
        assert second["top"] >= first["bottom"] and first["width"] > 150 and second["width"] > 150, (first, second)
        titles = explorer.evaluate("root => Array.from(root.querySelectorAll('g.annotation text')).map(e => { "
                                   "const r = e.getBoundingClientRect(); return [r.top, r.bottom]; })")
        assert len(titles) == 2 and titles[1][0] > titles[0][1], titles  # the titles one above the other
        assert not errors and not blocked
