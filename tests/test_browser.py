"""Open built pages in a real headless Chromium with the network cut off.

Uses Debian's ``/usr/bin/chromium`` through the ``playwright`` Python package
(never a browser that playwright downloads). The built HTML (shared with
``test_book_build`` through the ``built_book`` session fixture) is served
from 127.0.0.1; every request to any other host is aborted and recorded.

For each of the pages below: a plotly figure is drawn (an ``svg.main-svg``
with plotted traces), MathJax typeset the math (``mjx-container``), nothing
was requested from outside, no local request failed, and no script raised.
On a page with a plotly slider, clicking the slider's last step changes the
plotted data. Every page of the book that displays ipywidgets renders them
from the stored widget state, offline and without script errors.
"""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from conftest import chapter_docnames, chapter_id

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Pages whose figures, math and sliders are checked (the chapters of the book infrastructure owner).
PAGES = chapter_docnames()  # every chapter: figures drawn, math typeset, nothing fetched
TIMEOUT_MS = 30_000


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (make browser / apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        exe = str(CHROMIUM) if CHROMIUM.exists() else shutil.which("chromium")
        browser = pw.chromium.launch(executable_path=exe, args=LAUNCH_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


class PageLog:
    """What a page did: requests blocked for leaving 127.0.0.1, failed local requests, JS errors."""

    def __init__(self) -> None:
        self.blocked: list[str] = []
        self.failed: list[str] = []
        self.errors: list[str] = []


def open_page(browser: object, url: str) -> tuple[object, PageLog]:
    log = PageLog()
    context = browser.new_context(viewport={"width": 1280, "height": 1600})
    page = context.new_page()

    def route(r: object) -> None:
        host = urlparse(r.request.url).hostname
        if host == "127.0.0.1" or r.request.url.startswith(("data:", "blob:", "about:")):
            r.continue_()
        else:
            log.blocked.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("pageerror", lambda exc: log.errors.append(str(exc)))
    page.on(
        "response",
        lambda resp: log.failed.append(f"{resp.status} {resp.url}") if resp.status >= 400 else None,
    )
    page.on("requestfailed", lambda req: log.failed.append(f"failed {req.url}")
            if urlparse(req.url).hostname == "127.0.0.1" else None)
    page.goto(url, wait_until="load", timeout=TIMEOUT_MS)
    return page, log


def _trace_count(page: object) -> int:
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('.js-plotly-plot svg.main-svg'))
                 .map(svg => svg.querySelectorAll('g.trace, g.point, path.js-line').length)
                 .reduce((a, b) => a + b, 0)"""
    )


@pytest.mark.parametrize("docname", PAGES, ids=[chapter_id(d) for d in PAGES])
def test_page_renders_figures_and_math_offline(browser, book_server, docname: str) -> None:
    page, log = open_page(browser, f"{book_server}/{docname}.html")
    try:
        page.wait_for_selector(".js-plotly-plot svg.main-svg", state="attached", timeout=TIMEOUT_MS)
        page.wait_for_function("() => document.querySelectorAll('mjx-container').length > 0",
                               timeout=TIMEOUT_MS)
        page.wait_for_load_state("networkidle", timeout=TIMEOUT_MS)
        n_figs = page.evaluate("() => document.querySelectorAll('.plotly-graph-div.js-plotly-plot').length")
        n_divs = page.evaluate("() => document.querySelectorAll('.plotly-graph-div').length")
        assert n_figs == n_divs >= 1, f"{n_figs} of {n_divs} plotly figures were drawn"
        assert _trace_count(page) > 0, "figures drawn without any trace"
        n_math = page.evaluate("() => document.querySelectorAll('mjx-container').length")
        errors = page.evaluate("() => document.querySelectorAll('mjx-merror, .MathJax_Error').length")
        assert n_math > 0 and errors == 0, f"{n_math} formulas typeset, {errors} MathJax errors"
        assert not log.blocked, f"requests to the network: {log.blocked}"
        assert not log.failed, f"failed local requests: {log.failed}"
        assert not log.errors, f"JavaScript errors: {log.errors}"
    finally:
        page.context.close()


def test_slider_changes_the_plotted_data(browser, book_server) -> None:
    page, log = open_page(browser, f"{book_server}/book/preface.html")
    try:
        page.wait_for_selector(".js-plotly-plot .slider-container", timeout=TIMEOUT_MS)
        # the first figure with a slider: its data, active step and drawn path before the click
        state_js = """() => {
            const gd = Array.from(document.querySelectorAll('.js-plotly-plot'))
                            .find(g => g.layout && g.layout.sliders && g.layout.sliders.length);
            const path = gd.querySelector('g.trace path.js-line');
            return {active: gd.layout.sliders[0].active, n: gd.layout.sliders[0].steps.length,
                    y: Array.from(gd.data[0].y).slice(0, 400), d: path ? path.getAttribute('d') : null};
        }"""
        before = page.evaluate(state_js)
        assert before["n"] >= 2 and before["active"] != before["n"] - 1
        rail = page.locator(".js-plotly-plot .slider-container .slider-rail-touch-rect").first
        rail.scroll_into_view_if_needed()
        box = rail.bounding_box()
        page.mouse.click(box["x"] + box["width"] - 2, box["y"] + box["height"] / 2)
        page.wait_for_function(
            """(n) => Array.from(document.querySelectorAll('.js-plotly-plot'))
                  .some(g => g.layout && g.layout.sliders && g.layout.sliders[0].active === n - 1)""",
            arg=before["n"], timeout=TIMEOUT_MS,
        )
        page.wait_for_timeout(300)  # let the restyle redraw
        after = page.evaluate(state_js)
        assert after["active"] == before["n"] - 1
        assert after["y"] != before["y"], "slider moved but the data did not change"
        assert after["d"] != before["d"], "slider moved but the drawn curve did not change"
        assert not log.blocked and not log.errors
    finally:
        page.context.close()


def test_pages_with_widgets_render_them_offline(browser, book_server, built_book) -> None:
    pages = [p for p in built_book.html.rglob("*.html")
             if "_static" not in p.parts
             and "application/vnd.jupyter.widget-view+json" in p.read_text(encoding="utf-8")]
    if not pages:
        pytest.skip("no page of the book displays an ipywidget")
    for path in pages:
        rel = path.relative_to(built_book.html).as_posix()
        page, log = open_page(browser, f"{book_server}/{rel}")
        try:
            page.wait_for_function("() => document.querySelectorAll('.jupyter-widgets').length > 0",
                                   timeout=TIMEOUT_MS)
            page.wait_for_load_state("networkidle", timeout=TIMEOUT_MS)
            assert not log.blocked, f"{rel}: requests to the network: {log.blocked}"
            assert not log.failed, f"{rel}: failed local requests: {log.failed}"
            assert not log.errors, f"{rel}: JavaScript errors: {log.errors}"
        finally:
            page.context.close()
