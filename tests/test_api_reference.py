"""The API reference pages: generated from the docstrings, one page per public object, formulas typeset.

Uses the session's book build (``built_book``, shared with ``test_book_build``).
Every name that ``maxpo`` exports, and every public function of the exact
oracles, must be documented by autodoc somewhere in the reference (a Sphinx
``<dt id="...">`` anchor with its full name); a page whose autodoc directive
found nothing would have no such anchor. Docstring math (``:math:``) must reach
the page as MathJax input, not as literal reST.
"""
from __future__ import annotations

import inspect
import re

import pytest

import maxpo
import maxpo.reference

from conftest import BuiltBook, chapter_id, reference_docnames

pytestmark = pytest.mark.book

PAGES = reference_docnames()


def _anchors(book: BuiltBook) -> set[str]:
    ids: set[str] = set()
    for doc in PAGES:
        ids |= set(re.findall(r'<dt class="sig[^"]*" id="([^"]+)"', book.page(doc).read_text(encoding="utf-8")))
    return ids


def test_reference_is_in_the_toc() -> None:
    assert "book/api/index" in PAGES and len(PAGES) >= 5


@pytest.mark.parametrize("docname", PAGES, ids=[chapter_id(d) for d in PAGES])
def test_reference_page_is_built(built_book: BuiltBook, docname: str) -> None:
    page = built_book.page(docname)
    assert page.is_file(), f"no page for {docname}"
    html = page.read_text(encoding="utf-8")
    if docname != "book/api/index":
        assert re.search(r'<dt class="sig[^"]*" id="maxpo\.', html), f"{docname}: autodoc documented nothing"
    assert ":math:" not in html, f"{docname}: a docstring's :math: role reached the page untypeset"


def test_every_public_object_is_documented(built_book: BuiltBook) -> None:
    anchors = _anchors(built_book)
    wanted = {f"maxpo.{name}" for name in maxpo.__all__ if name not in {"__version__", "METHODS"}}
    wanted |= {
        f"maxpo.reference.{name}"
        for name, obj in vars(maxpo.reference).items()
        if inspect.isfunction(obj) and not name.startswith("_") and obj.__module__ == "maxpo.reference"
    }
    wanted.add("maxpo.estimators.MethodInfo")
    missing = sorted(w for w in wanted if w not in anchors)
    assert not missing, f"not in the API reference: {missing}"


def test_docstring_formulas_are_typeset(built_book: BuiltBook) -> None:
    html = built_book.page("book/api/advantages").read_text(encoding="utf-8")
    assert re.search(r'<span class="math[^"]*">\\\(.*Q_i', html), "the MaxPO formula is not rendered as math"
