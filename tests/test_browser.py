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

from urllib.parse import urlparse

import pytest

from conftest import chapter_docnames, chapter_id

pytestmark = pytest.mark.browser

#: Pages whose figures, math and sliders are checked (the chapters of the book infrastructure owner).
PAGES = chapter_docnames()  # every chapter: figures drawn, math typeset, nothing fetched
TIMEOUT_MS = 30_000


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


# --------------------------------------------------------------------------- layout at two widths
#: Desktop and phone widths every page is checked at.
WIDTHS = (1280, 390)

#: Measures the page in the browser. The text column is the article body. An element
#: "overflows" when it is wider than the column; it is "clipped" when it sticks out of
#: the viewport without a horizontal scroll container (overflow-x auto/scroll) between
#: it and the column to scroll it into view.
#: JS: the bars of a plotly figure ``gd`` that reach past their plot area (plotly cuts them there), as
#: ``{trace, sides}``; the bottom and left of a log axis are not counted (bars start off-axis there). Shared by
#: the layout check of the drawn state and the check of every control state.
_CUT_BARS_JS = """
  const cutBars = (gd) => {
    const fl = gd._fullLayout, found = [];
    gd.querySelectorAll('.cartesianlayer g.subplot').forEach(sp => {
      const id = Array.from(sp.classList).find(c => /^x\\d*y\\d*$/.test(c));
      const drag = id && gd.querySelector('.draglayer g.' + id + ' rect.nsewdrag');
      if (!drag) return;
      const area = drag.getBoundingClientRect();
      const xa = fl[id.replace(/y.*/, '').replace('x', 'xaxis')], ya = fl['yaxis' + id.replace(/^x\\d*y/, '')];
      sp.querySelectorAll('g.trace.bars g.point path').forEach(p => {
        const r = p.getBoundingClientRect();
        if (r.width === 0 && r.height === 0) return;
        const sides = [];
        if (r.top < area.top - 1) sides.push('top');
        if (r.right > area.right + 1) sides.push('right');
        if (r.bottom > area.bottom + 1 && !(ya && ya.type === 'log')) sides.push('bottom');
        if (r.left < area.left - 1 && !(xa && xa.type === 'log')) sides.push('left');
        if (sides.length) found.push({trace: p.closest('g.trace').__data__?.[0]?.trace?.name || '', sides});
      });
    });
    return found;
  };
"""

_LAYOUT_JS = """() => {
""" + _CUT_BARS_JS + """
  const col = document.querySelector('article.bd-article') || document.querySelector('main');
  const colRect = col.getBoundingClientRect(), colStyle = getComputedStyle(col);
  const padL = parseFloat(colStyle.paddingLeft), padR = parseFloat(colStyle.paddingRight);
  const colBox = {left: colRect.left + padL, right: colRect.right - padR, width: colRect.width - padL - padR};
  const scroller = (el) => {
    for (let a = el.parentElement; a && a !== col; a = a.parentElement) {
      const ox = getComputedStyle(a).overflowX;
      if ((ox === 'auto' || ox === 'scroll') && a.getBoundingClientRect().width <= colBox.width + 1) return a;
    }
    return null;
  };
  const describe = (el) => {
    const id = el.closest('[id]');
    const txt = (el.innerText || el.textContent || '').replace(/\\s+/g, ' ').slice(0, 60);
    return (id ? '#' + id.id + ' ' : '') + el.tagName.toLowerCase() + ' "' + txt + '"';
  };
  const items = [];
  const add = (kind, el, width) => items.push({kind, el, width});
  // a display equation needs its own width plus its number (Sphinx floats span.eqno to the right)
  document.querySelectorAll('mjx-container[display="true"]').forEach(m => {
    const inner = m.querySelector('mjx-math') || m;
    const box = m.closest('div.math');
    const eqno = box ? box.querySelector('span.eqno') : null;
    add('equation', m, inner.getBoundingClientRect().width + (eqno ? eqno.getBoundingClientRect().width + 8 : 0));
  });
  col.querySelectorAll('table').forEach(t => add('table', t, t.getBoundingClientRect().width));
  col.querySelectorAll('.plotly-graph-div, img').forEach(f => add('figure', f, f.getBoundingClientRect().width));
  const overflow = [], clipped = [];
  for (const {kind, el, width} of items) {
    if (width > colBox.width + 2) overflow.push(kind + ' ' + Math.round(width) + ' px > column ' +
                                                Math.round(colBox.width) + ' px: ' + describe(el));
    const box = el.getBoundingClientRect();
    const right = box.left + width;
    if ((right > window.innerWidth + 2 || box.left < -2) && !scroller(el))
      clipped.push(kind + ' reaches ' + Math.round(right) + ' px of ' + window.innerWidth + ': ' + describe(el));
  }
  // the page scrolls sideways: the document is wider than the viewport; name the innermost culprits
  const sideways = [];
  const doc = document.documentElement;
  if (doc.scrollWidth > window.innerWidth + 1) {
    const boxed = (el) => {
      for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
        const ox = getComputedStyle(a).overflowX;
        if (ox !== 'visible' && a.getBoundingClientRect().right <= window.innerWidth + 1) return true;
      }
      return false;
    };
    const wide = Array.from(document.body.querySelectorAll('*')).filter(el => {
      const r = el.getBoundingClientRect();
      return r.width > 0 && r.right > window.innerWidth + 1 && !boxed(el);
    });
    const leaves = wide.filter(el => !wide.some(o => o !== el && el.contains(o)));
    sideways.push('the page scrolls sideways: document ' + doc.scrollWidth + ' px wide in a ' + window.innerWidth +
                  ' px window, from ' + leaves.slice(0, 4).map(describe).join('; '));
  }
  // raw sub/superscripts where the reader expects math: J_1, A_{K}, Σ_i, x^2 (code names like grpo_passk are fine)
  const RAW = new RegExp(['(?:^|[^A-Za-z0-9_])[A-Za-z\\u0370-\\u03ff]_[{A-Za-z0-9]', '[_^]\\\\{',
                          '[A-Za-z0-9)]\\\\^[A-Za-z0-9{(]', '[A-Za-z]_[A-Za-z0-9](?![A-Za-z0-9_])'].join('|'));
  const shown = (el) => {
    const c = el.cloneNode(true);
    c.querySelectorAll('mjx-container, script').forEach(m => m.remove());
    return (c.textContent || '').replace(/\\s+/g, ' ').trim();
  };
  const raw = [];
  col.querySelectorAll('th').forEach(th => {
    const t = shown(th);
    if (RAW.test(t)) raw.push('table header "' + t + '": ' + describe(th));
  });
  // printed output that is cut (a scroll box of fixed height, a line that needs a sideways scroll)
  // or one cell's printed output split into several boxes
  const outputs = [];
  col.querySelectorAll('pre, .cell_output > .output').forEach(el => {
    const s = getComputedStyle(el);
    if (el.tagName === 'PRE' && el.scrollWidth > el.clientWidth + 2)
      outputs.push('a line needs a sideways scroll (' + el.scrollWidth + ' of ' + el.clientWidth + ' px): ' +
                   describe(el));
    if (s.overflowY !== 'visible' && el.scrollHeight > el.clientHeight + 4)
      outputs.push('output cut at ' + el.clientHeight + ' of ' + el.scrollHeight + ' px: ' + describe(el));
  });
  col.querySelectorAll('.cell_output').forEach(out => {
    const kids = Array.from(out.children);
    for (let i = 1; i < kids.length; i++) {
      if (kids[i].matches('.output.stream, .output.stderr') && kids[i].className === kids[i - 1].className) {
        outputs.push('printed output split into separate boxes: ' + describe(out));
        break;
      }
    }
  });
  // the four corners of an SVG element's own box, in page pixels (rotation and all transforms applied)
  const corners = (e) => {
    const b = e.getBBox(), m = e.getScreenCTM();
    return [[b.x, b.y], [b.x + b.width, b.y], [b.x + b.width, b.y + b.height], [b.x, b.y + b.height]]
      .map(([x, y]) => [m.a * x + m.c * y + m.e, m.b * x + m.d * y + m.f]);
  };
  // two convex quadrilaterals overlap by more than tol px along every separating axis (their edge normals)
  const intersect = (p, q, tol) => {
    for (const poly of [p, q]) {
      for (let i = 0; i < 4; i++) {
        const [x1, y1] = poly[i], [x2, y2] = poly[(i + 1) % 4];
        const len = Math.hypot(x2 - x1, y2 - y1);
        if (len < 1e-9) continue;
        const nx = (y1 - y2) / len, ny = (x2 - x1) / len;
        const proj = (pts) => pts.map(([x, y]) => x * nx + y * ny);
        const a = proj(p), b = proj(q);
        if (Math.min(Math.max(...a), Math.max(...b)) - Math.max(Math.min(...a), Math.min(...b)) <= tol) return false;
      }
    }
    return true;
  };
  const plots = [], titles = [], covered = [], ticks = [], bars = [], notes = [], controls = [], cut = [];
  // a control reaches past the right (or left) edge of what holds it: its figure or explorer, and the column
  const pastEdge = (what, el, holder) => {
    const b = el.getBoundingClientRect(), h = holder.getBoundingClientRect();
    if (b.width === 0 && b.height === 0) return;
    const right = Math.min(h.right, colBox.right), left = Math.max(h.left, colBox.left);
    if (b.right > right + 2 || b.left < left - 2)
      controls.push(what + ' spans ' + Math.round(b.left) + '..' + Math.round(b.right) + ' px, its ' +
                    (h.right < colBox.right ? 'figure' : 'column') + ' ' + Math.round(left) + '..' +
                    Math.round(right) + ' px: ' + describe(holder));
  };
  // the static explorers' own HTML controls (menus, sliders) and their labels
  col.querySelectorAll('.mx-explorer').forEach(ex => ex.querySelectorAll('.mx-controls label, .mx-controls select, ' +
    '.mx-controls input').forEach(c => pastEdge('a static control "' + (c.tagName === 'LABEL' ?
      (c.textContent || '').trim().split(/\\s+/)[0] : c.tagName.toLowerCase()) + '"', c, ex)));
  document.querySelectorAll('.js-plotly-plot').forEach((gd, n) => {
    const fl = gd._fullLayout;
    if (!fl) return;
    const name = (gd.closest('figure, .cell') || gd).id || ('plot ' + (n + 1));
    // two annotations (subplot titles are annotations) whose drawn text boxes intersect by more than 1 px
    const texts = Array.from(gd.querySelectorAll('g.annotation text.annotation-text'))
      .filter(e => e.getBoundingClientRect().width > 0 && (e.textContent || '').trim())
      .map(e => ({c: corners(e), t: (e.textContent || '').trim()}));
    for (let i = 0; i < texts.length; i++)
      for (let j = i + 1; j < texts.length; j++)
        if (intersect(texts[i].c, texts[j].c, 1))
          notes.push(name + ': annotations "' + texts[i].t + '" and "' + texts[j].t + '" overlap');
    // a title (figure, axis) or a legend entry whose drawn text reaches past the figure's own box is cut there
    const svgBox = (gd.querySelector('svg.main-svg') || gd).getBoundingClientRect();
    gd.querySelectorAll('text.gtitle, g[class*="title"] text, g.legend text.legendtext').forEach(e => {
      const b = e.getBoundingClientRect(), t = (e.textContent || '').trim();
      if (!t || b.width === 0) return;
      if (b.right > svgBox.right + 2 || b.left < svgBox.left - 2 ||
          b.bottom > svgBox.bottom + 2 || b.top < svgBox.top - 2)
        cut.push(name + ': "' + t.slice(0, 50) + '" spans ' + Math.round(b.left - svgBox.left) + '..' +
                 Math.round(b.right - svgBox.left) + ' px of a ' + Math.round(svgBox.width) + ' px figure');
    });
    // plotly's own menus and sliders
    gd.querySelectorAll('g.updatemenu-header-group, g.updatemenu-button, g.slider-container').forEach(c =>
      pastEdge(name + ': a plotly ' + (c.matches('g.slider-container') ? 'slider' : 'menu'), c, gd));
    const w = fl._size.w, total = fl.width, h = fl._size.h, totalH = fl.height;
    if (w < 0.45 * total || w < 150)
      plots.push(name + ': plot area ' + Math.round(w) + ' of ' + Math.round(total) + ' px wide');
    if (h < 0.4 * totalH || h < 150)
      plots.push(name + ': plot area ' + Math.round(h) + ' of ' + Math.round(totalH) + ' px high');
    for (const key of Object.keys(fl)) {
      const m = /^([xy])axis(\\d*)$/.exec(key);
      if (!m) continue;
      const ax = fl[key];
      const t = ax.title && ax.title.text;
      if (t && t.includes('_')) titles.push(name + ' ' + key + ': ' + t);
      if (ax.type === 'log' && typeof ax.dtick === 'string' && ax.dtick.startsWith('D'))
        ticks.push(name + ' ' + key + ': the log axis labels its minor ticks (dtick ' + ax.dtick + ')');
      const boxes = Array.from(gd.querySelectorAll('g.' + m[1] + m[2] + 'tick text'))
        .filter(e => e.getBoundingClientRect().width > 0 && (e.textContent || '').trim())
        .map(e => ({c: corners(e), t: e.textContent}));
      overlap: for (let i = 0; i < boxes.length; i++) {
        for (let j = i + 1; j < boxes.length; j++) {
          if (intersect(boxes[i].c, boxes[j].c, 1)) {
            ticks.push(name + ' ' + key + ': tick labels "' + boxes[i].t + '" and "' + boxes[j].t + '" overlap');
            break overlap;
          }
        }
      }
    }
    // a bar that reaches past its plot area is cut there (plotly clips it at the axis range)
    cutBars(gd).forEach(c => bars.push(name + ': a bar (' + c.trace + ') is cut at the ' + c.sides.join(' and ') +
                                       ' of the plot area'));
    gd.querySelectorAll('.legendtext, .gtitle, .xtitle, .ytitle, [class^="x"][class$="title"], ' +
                        '[class^="y"][class$="title"], .annotation-text, .cbtitle text').forEach(e => {
      const t = (e.textContent || '').trim();
      if (RAW.test(t)) raw.push(name + ': raw subscript in "' + t + '"');
    });
    const legend = gd.querySelector('g.legend'), menus = gd.querySelectorAll('g.updatemenu-header-group');
    if (legend) {
      const l = legend.getBoundingClientRect();
      menus.forEach(m => {
        const b = m.getBoundingClientRect();
        if (b.left < l.right && l.left < b.right && b.top < l.bottom && l.top < b.bottom)
          covered.push(name + ': a dropdown covers the legend');
      });
    }
  });
  return {overflow, clipped, plots, titles, covered, sideways, raw: Array.from(new Set(raw)), outputs, ticks,
          bars: Array.from(new Set(bars)), notes, controls: Array.from(new Set(controls)),
          cut: Array.from(new Set(cut)), column: colBox.width};
}"""


def _layout(browser: object, url: str, width: int) -> dict:
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.route("**/*", lambda r: r.continue_() if urlparse(r.request.url).hostname == "127.0.0.1" else r.abort())
    try:
        response = page.goto(url, wait_until="load", timeout=TIMEOUT_MS)
        assert response is not None and response.ok, f"{url}: HTTP {response.status if response else 'none'}"
        try:
            page.wait_for_load_state("networkidle", timeout=TIMEOUT_MS)
        except Exception:  # noqa: BLE001 - a busy machine; the checks below wait for what they need
            pass
        page.wait_for_function(
            """() => document.querySelectorAll('.plotly-graph-div').length ===
                     document.querySelectorAll('.plotly-graph-div.js-plotly-plot').length""",
            timeout=TIMEOUT_MS)
        page.wait_for_function(
            "() => !window.MathJax || !MathJax.startup || MathJax.startup.promise.then(() => true)",
            timeout=TIMEOUT_MS)
        page.wait_for_timeout(500)  # responsive plots re-layout after the first paint
        return page.evaluate(_LAYOUT_JS)
    finally:
        context.close()


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("docname", PAGES, ids=[chapter_id(d) for d in PAGES])
def test_page_layout_fits(browser, book_server, docname: str, width: int) -> None:
    """At 1280 px nothing is wider than the text column; at 390 px nothing is clipped.

    Also at both widths: every plot keeps at least 45% of its figure's width (and
    150 px) and 40% of its height (and 150 px) for the plot area, no axis title shows a raw ``_``, and no dropdown
    menu sits on top of a legend. A wide table or equation inside a horizontal
    scroll container is fine on the phone. Also at both widths:

    * the page never scrolls sideways (document wider than the window);
    * no raw sub/superscript (``J_1``, ``A_{K}``, ``x^2``) in a table header, a
      figure's title, axis titles, legend or annotations;
    * no printed output is cut (a fixed-height scroll box, a line that needs a
      sideways scroll) or split into several boxes;
    * no two tick labels of one axis overlap (their drawn boxes, rotation included,
      intersect by more than 1 px: turned labels whose boxes only cross as
      axis-aligned rectangles do not count), and no log axis labels its minor
      ticks (plotly's ``D1``/``D2`` ticks: "2, 100, 9…2");
    * no bar reaches past its plot area (plotly cuts it at the axis range);
    * no two annotations of one figure (subplot titles are annotations) overlap:
      their drawn text boxes intersect by more than 1 px;
    * no control reaches past the right or left edge of its figure or of the text
      column: a plotly menu (its closed header or a row of buttons) or slider, or
      a static explorer's HTML menu, slider or their label;
    * no title (the figure's, an axis's) or legend entry of a plotly figure reaches
      past the figure's own box, where it is cut.
    """
    got = _layout(browser, f"{book_server}/{docname}.html", width)
    problems = (got["plots"] + got["titles"] + got["covered"] + got["clipped"] + got["sideways"] + got["raw"]
                + got["outputs"] + got["ticks"] + got["bars"] + got["notes"] + got["controls"] + got["cut"])
    if width >= 1000:
        problems += got["overflow"]
    assert not problems, f"{docname} at {width} px (text column {got['column']:.0f} px):\n" + "\n".join(problems)



# --------------------------------------------------------------------------- bars in every control state
#: At most this many states of one control (or of one static explorer's grid) are drawn; a control with more
#: is stepped through this many, evenly spaced, its first and last included.
MAX_STATES = 400
#: Time allowed for one figure's states, and for one plotly call, in the page (ms).
FIGURE_BUDGET_MS = 120_000
CALL_BUDGET_MS = 15_000

#: Draws every state of the controls of figure number ``n`` on the page and returns the bars cut by the plot
#: area in any of them. A static explorer (``.mx-explorer``) is driven through its own HTML controls (every
#: combination of a grid explorer's menus and sliders; each control of the dragged-rewards explorer through
#: its positions, the others at their start) and its page script's drawing (``plot.mxDrawn``) is awaited; a
#: figure with plotly menus or sliders gets each button or step applied with its own plotly method and
#: arguments, one control at a time, the others at their active state.
_BARS_IN_EVERY_STATE_JS = """async ([n, maxStates, figureMs, callMs]) => {
""" + _CUT_BARS_JS + """
  const gd = document.querySelectorAll('.js-plotly-plot')[n];
  const name = (gd.closest('figure, .cell') || gd).id || ('plot ' + (n + 1));
  const t0 = performance.now(), cut = new Set(), problems = [];
  let states = 0;
  const within = (p, what) => Promise.race([Promise.resolve(p), new Promise((_, no) =>
    setTimeout(() => no(new Error(what + ' did not finish in ' + callMs + ' ms')), callMs))]);
  const frame = () => new Promise(ok => requestAnimationFrame(() => ok()));
  const check = (label) => {
    const fl = gd._fullLayout;
    if (!fl || gd.style.display === 'none') return;
    cutBars(gd).forEach(c => cut.add(name + ' (' + label + '): a bar (' + c.trace + ') is cut at the ' +
                                     c.sides.join(' and ')));
  };
  const spread = (count) => {  // indices 0..count-1, at most maxStates of them, first and last included
    if (count <= maxStates) return Array.from({length: count}, (_, i) => i);
    return Array.from(new Set(Array.from({length: maxStates},
                                         (_, i) => Math.round(i * (count - 1) / (maxStates - 1)))));
  };
  const late = () => performance.now() - t0 > figureMs;
  try {
    const ex = gd.closest('.mx-explorer');
    if (ex) {
      const inputs = Array.from(ex.querySelectorAll(
        '[data-mx], input[data-mx-r], input[data-mx-k], select[data-mx-m]'));
      const positions = inputs.map(el => el.tagName === 'SELECT' ? Array.from(el.options, (_, i) => i)
        : Array.from({length: Number(el.max) - Number(el.min) + 1}, (_, i) => Number(el.min) + i));
      const start = inputs.map(el => el.tagName === 'SELECT' ? el.selectedIndex : Number(el.value));
      const set = (el, v) => {
        if (el.tagName === 'SELECT') el.selectedIndex = v; else el.value = String(v);
        el.dispatchEvent(new Event('input', {bubbles: true}));
      };
      const draw = async (label) => {
        await within(gd.mxDrawn, 'drawing ' + label);
        await frame();
        check(label);
        states++;
      };
      const grid = inputs.every(el => el.hasAttribute('data-mx'));
      const total = positions.reduce((a, p) => a * p.length, 1);
      if (grid && total <= maxStates) {
        for (let s = 0; s < total && !late(); s++) {  // every combination, the last control fastest
          let rest = s;
          const combo = positions.map(() => 0);
          for (let i = inputs.length - 1; i >= 0; i--) { combo[i] = positions[i][rest % positions[i].length];
                                                         rest = Math.floor(rest / positions[i].length); }
          combo.forEach((v, i) => { if ((inputs[i].tagName === 'SELECT' ? inputs[i].selectedIndex
                                          : Number(inputs[i].value)) !== v) set(inputs[i], v); });
          await draw(inputs.map((el, i) => el.parentNode.textContent.trim().split(/\\s+/)[0] + ' ' + combo[i])
                               .join(', '));
        }
        if (late()) problems.push(name + ': stopped after ' + states + ' of ' + total + ' states (time budget)');
      } else {
        for (let i = 0; i < inputs.length && !late(); i++) {
          for (const k of spread(positions[i].length)) {
            if (late()) break;
            set(inputs[i], positions[i][k]);
            await draw('control ' + i + ' at ' + positions[i][k]);
          }
          set(inputs[i], start[i]);
        }
        if (late()) problems.push(name + ': stopped after ' + states + ' states (time budget)');
      }
      inputs.forEach((el, i) => set(el, start[i]));
      await within(gd.mxDrawn, 'drawing the start');
    } else {
      const controls = [].concat(
        (gd.layout.updatemenus || []).map(m => ({active: m.active || 0, steps: m.buttons || []})),
        (gd.layout.sliders || []).map(s => ({active: s.active || 0, steps: s.steps || []})));
      const apply = async (b, label) => {
        if (!b || !b.method || b.method === 'skip' || b.method === 'animate') return;
        const args = (b.args || []).map(a => JSON.parse(JSON.stringify(a ?? null)));
        await within(Plotly[b.method](gd, ...args), 'Plotly.' + b.method + ' (' + label + ')');
      };
      check('as drawn');
      for (const c of controls) {
        for (const k of spread(c.steps.length)) {
          if (late()) break;
          await apply(c.steps[k], c.steps[k].label);
          check(c.steps[k].label);
          states++;
        }
        await apply(c.steps[c.active], 'back to the active state');
        if (late()) { problems.push(name + ': stopped after ' + states + ' states (time budget)'); break; }
      }
    }
  } catch (err) {
    problems.push(name + ': ' + err.message);
  }
  return {cut: Array.from(cut), problems, states, ms: Math.round(performance.now() - t0)};
}"""


@pytest.mark.parametrize("docname", PAGES, ids=[chapter_id(d) for d in PAGES])
def test_no_bar_is_cut_in_any_control_state(browser, book_server, docname: str) -> None:
    """Every state of every control on the page, drawn in turn: no bar reaches past its plot area.

    A fixed axis range, or one computed for the starting state only, cuts a
    bar at the top in some other state. One ``evaluate`` per figure, at most
    :data:`MAX_STATES` states per control (per grid), each plotly call bounded
    in time and each figure too (running out of time fails the test: a state
    not drawn is not checked).
    """
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.route("**/*", lambda r: r.continue_() if urlparse(r.request.url).hostname == "127.0.0.1" else r.abort())
    try:
        page.goto(f"{book_server}/{docname}.html", wait_until="load", timeout=TIMEOUT_MS)
        page.wait_for_function(
            """() => document.querySelectorAll('.plotly-graph-div').length ===
                     document.querySelectorAll('.plotly-graph-div.js-plotly-plot').length""",
            timeout=TIMEOUT_MS)
        with_controls = page.evaluate(
            """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map((gd, n) =>
                 (gd.closest('.mx-explorer') || (gd.layout && ((gd.layout.updatemenus || []).length ||
                  (gd.layout.sliders || []).length))) ? n : -1).filter(n => n >= 0)""")
        cut: list[str] = []
        problems: list[str] = []
        for n in with_controls:
            got = page.evaluate(_BARS_IN_EVERY_STATE_JS, [n, MAX_STATES, FIGURE_BUDGET_MS, CALL_BUDGET_MS])
            print(f"{docname} figure {n}: {got['states']} states in {got['ms']} ms")
            cut += got["cut"]
            problems += got["problems"]
        assert not problems and not cut, f"{docname}:\n" + "\n".join(problems + cut)
    finally:
        context.close()


def test_the_every_state_check_finds_a_bar_cut_in_a_later_state(browser) -> None:
    """The check above on a figure made to fail: a fixed y range of 0..3 fits the first menu state's bars (1, 2)
    and cuts the second's (5, 10) at the top, which the layout test of the drawn state cannot see."""
    import json
    from pathlib import Path

    import plotly
    import plotly.graph_objects as go

    from maxpo.figures import viz

    fig = viz.dropdown_figure({"small": 1.0, "large": 5.0}, lambda v: [go.Bar(x=["a", "b"], y=[v, 2 * v], name="v")],
                              yaxis=dict(range=[0, 3]))
    plotly_js = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_text(encoding="utf-8")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        page.set_content(f"<!doctype html><html><head><meta charset='utf-8'><script>{plotly_js}</script></head>"
                         f"<body><div id='f' class='plotly-graph-div'></div><script>var d = {fig.to_json()};"
                         "Plotly.newPlot('f', d.data, d.layout);</script></body></html>")
        page.wait_for_selector("#f g.trace.bars")
        got = page.evaluate(_BARS_IN_EVERY_STATE_JS, [0, MAX_STATES, FIGURE_BUDGET_MS, CALL_BUDGET_MS])
        assert got["states"] == 2 and not got["problems"], json.dumps(got)
        assert len(got["cut"]) == 1 and "(large)" in got["cut"][0] and "cut at the top" in got["cut"][0], got["cut"]
    finally:
        context.close()
