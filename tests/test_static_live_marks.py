"""The static book is honest about what needs a kernel, and offers each chapter as a notebook.

On the built HTML (the session's ``built_book``):

* every page that displays an ipywidget has, above its first widget, a note
  saying the explorer needs a running Python kernel and naming ``make lab``;
* every chapter's download menu links a ``.ipynb`` by a relative URL (so it
  works offline), the file is there, it is a valid notebook, and it holds the
  chapter's code cells (jupytext's conversion of the ``.md``).
"""
from __future__ import annotations

import posixpath
import re

import jupytext
import nbformat
import pytest

from conftest import REPO, chapter_docnames, chapter_id

pytestmark = pytest.mark.book

CHAPTERS = chapter_docnames()  # the API reference pages are not notebooks
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
THEORY = ["book/objective", "book/policy_gradient", "book/baselines", "book/canonical", "book/computing"]


def test_every_theory_chapter_has_a_live_explorer() -> None:
    for docname in THEORY:
        text = (REPO / f"{docname}.md").read_text()
        assert "## Explore it live" in text and "from maxpo.explorers import" in text, docname


def test_widgets_are_marked_as_needing_a_kernel(built_book) -> None:
    pages = [d for d in CHAPTERS if WIDGET_VIEW in built_book.page(d).read_text(encoding="utf-8")]
    assert set(THEORY) <= set(pages), f"explorers missing from {sorted(set(THEORY) - set(pages))}"
    for docname in pages:
        html = built_book.page(docname).read_text(encoding="utf-8")
        before_widget = re.sub(r"<[^>]+>", "", html[: html.index(WIDGET_VIEW)])  # text only
        note = before_widget.rfind("needs a running Python kernel")
        assert note >= 0, f"{docname}: no live-only note above its first widget"
        assert "make lab" in before_widget[note:], f"{docname}: the note does not name `make lab`"


@pytest.mark.parametrize("docname", CHAPTERS, ids=[chapter_id(d) for d in CHAPTERS])
def test_page_offers_its_notebook(built_book, docname: str) -> None:
    html = built_book.page(docname).read_text(encoding="utf-8")
    links = re.findall(r'href="([^"]+\.ipynb)"', html)
    assert links, f"{docname}: no .ipynb download link"
    href = links[0]
    assert not re.match(r"[a-z]+://", href), f"{docname}: {href} is not a relative link"
    target = built_book.html / posixpath.normpath(posixpath.join(posixpath.dirname(docname), href))
    assert target.is_file(), f"{docname}: {href} points at a missing file"
    nb = nbformat.read(str(target), as_version=4)
    nbformat.validate(nb)
    source = jupytext.read(REPO / f"{docname}.md")
    assert [c.source for c in nb.cells if c.cell_type == "code"] == \
        [c.source for c in source.cells if c.cell_type == "code"]
    assert nb.metadata["kernelspec"]["name"] == "python3"
