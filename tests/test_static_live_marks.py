"""The static book is honest about what needs a kernel, and offers each chapter as a notebook.

On the built HTML (the session's ``built_book``):

* no chapter says its explorer computes nothing on the static page (they all
  work there: ``tests/test_static_explorers.py`` moves every control);
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
THEORY = ["book/objective", "book/policy_gradient", "book/baselines", "book/canonical", "book/computing"]


def test_every_theory_chapter_has_a_live_explorer() -> None:
    for docname in THEORY:
        text = (REPO / f"{docname}.md").read_text()
        assert "## Explore it live" in text and "from maxpo.explorers import" in text, docname


def test_no_chapter_says_its_explorer_computes_nothing() -> None:
    """The explorers work on the static page (tests/test_static_explorers.py), so no note says otherwise,
    and none can show in the live notebook either (the chapter's source is what JupyterLab opens)."""
    for docname in CHAPTERS:
        text = (REPO / f"{docname}.md").read_text()
        assert "computes nothing" not in text and "Live only" not in text, docname


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
