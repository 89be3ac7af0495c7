"""Build the whole book once (``jupyter-book build -W --keep-going --all .``) and check the HTML.

Checks: the build exits 0 with warnings as errors; every chapter in
``_toc.yml`` has a page; every chapter shows at least one plotly figure; no
page needs anything from the network to render (scripts, styles, images,
fonts, MathJax, plotly.js, the widget manager all come from the book itself);
the offline assets are in place. The build's wall time is printed.
"""
from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import BuiltBook, chapter_docnames, chapter_id

pytestmark = pytest.mark.book

CHAPTERS = chapter_docnames()
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)  # http://, https://, //host


class _ResourceCollector(HTMLParser):
    """Collects every URL that a browser would fetch to render the page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if tag in {"script", "img", "iframe", "source", "audio", "video", "embed", "track"} and a.get("src"):
            self.urls.append((tag, a["src"]))
        if tag == "link" and a.get("href"):
            rel = a.get("rel", "").lower()
            if any(r in rel for r in ("stylesheet", "preload", "modulepreload", "icon", "manifest")):
                self.urls.append((f"link[{rel}]", a["href"]))
        if tag == "object" and a.get("data"):
            self.urls.append((tag, a["data"]))


def _html_pages(book: BuiltBook) -> list[Path]:
    return sorted(p for p in book.html.rglob("*.html") if "_static" not in p.parts)


def test_build_succeeds_with_warnings_as_errors(built_book: BuiltBook) -> None:
    if built_book.returncode is None:
        pytest.skip("reusing an existing build (MAXPO_BOOK_HTML): nothing was built")
    print(f"book build wall time: {built_book.wall_s:.1f} s")
    assert built_book.returncode == 0, "jupyter-book build failed:\n" + built_book.log[-8000:]


@pytest.mark.parametrize("docname", CHAPTERS, ids=[chapter_id(d) for d in CHAPTERS])
def test_chapter_page_has_a_plotly_figure(built_book: BuiltBook, docname: str) -> None:
    page = built_book.page(docname)
    assert page.is_file(), f"no page for {docname} in {built_book.html}"
    html = page.read_text(encoding="utf-8")
    assert 'class="plotly-graph-div"' in html, f"{docname}: no plotly figure on the page"
    assert "plotly/plotly.min.js" in html, f"{docname}: has figures but does not load the local plotly.js"


def test_root_page_exists(built_book: BuiltBook) -> None:
    assert (built_book.html / "index.html").is_file()


def test_no_page_loads_anything_from_the_network(built_book: BuiltBook) -> None:
    offenders = []
    for page in _html_pages(built_book):
        parser = _ResourceCollector()
        parser.feed(page.read_text(encoding="utf-8"))
        for tag, url in parser.urls:
            if EXTERNAL.match(url.strip()):
                offenders.append(f"{page.relative_to(built_book.html)}: <{tag}> {url}")
    assert not offenders, "pages load resources from the network:\n" + "\n".join(offenders)


def test_no_stylesheet_imports_from_the_network(built_book: BuiltBook) -> None:
    offenders = []
    for css in (built_book.html / "_static").rglob("*.css"):
        network_ref = r"(?:@import\s+|url\()\s*['\"]?((?:https?:)?//[^'\")\s]+)"
        for m in re.finditer(network_ref, css.read_text(errors="replace")):
            offenders.append(f"{css.relative_to(built_book.html)}: {m.group(1)}")
    assert not offenders, "stylesheets fetch from the network:\n" + "\n".join(offenders)


def test_math_is_typeset_by_the_local_mathjax(built_book: BuiltBook) -> None:
    static = built_book.html / "_static"
    assert (static / "mathjax" / "tex-chtml.js").is_file()
    assert any((static / "mathjax" / "output" / "chtml" / "fonts").rglob("*.woff")), "MathJax fonts missing"
    pages_with_math = 0
    for page in _html_pages(built_book):
        html = page.read_text(encoding="utf-8")
        parser = _ResourceCollector()
        parser.feed(html)
        mathjax = [url for tag, url in parser.urls if tag == "script" and "mathjax" in url.lower()]
        for url in mathjax:
            assert "_static/mathjax/tex-chtml.js" in url, f"{page.name} loads MathJax from {url}"
        if 'class="math' in html:
            assert mathjax, f"{page.name} has math but loads no MathJax"
            pages_with_math += 1
    assert pages_with_math >= 1


def test_widget_pages_use_the_local_widget_manager(built_book: BuiltBook) -> None:
    assert (built_book.html / "_static" / "jupyter-widgets" / "embed.js").is_file()
    for page in _html_pages(built_book):
        html = page.read_text(encoding="utf-8")
        if "application/vnd.jupyter.widget-state+json" in html:
            assert "_static/jupyter-widgets/embed.js" in html, f"{page.name}: widget manager not local"
            assert "require.min.js" not in html, f"{page.name}: still loads RequireJS"


def test_plotly_js_is_the_one_shipped_with_plotly(built_book: BuiltBook) -> None:
    import plotly

    served = built_book.html / "_static" / "plotly" / "plotly.min.js"
    shipped = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    assert served.read_bytes() == shipped.read_bytes()
