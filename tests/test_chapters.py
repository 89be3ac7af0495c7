"""Execute every chapter of the book (one test per chapter in ``_toc.yml``) with small sample sizes.

Each ``book/*.md`` MyST notebook is read with jupytext and run top to bottom
with nbclient in a fresh kernel, with ``MAXPO_QUICK=1`` so that chapters use
their quick sample sizes (``maxpo.figures.settings.sized``). A failing cell, including
a failed ``assert`` that checks a derivation, fails the test.
"""
from __future__ import annotations

import jupytext
import nbclient
import pytest

from conftest import REPO, chapter_docnames, chapter_id

pytestmark = pytest.mark.book

CHAPTERS = chapter_docnames()


def test_toc_lists_chapters():
    assert CHAPTERS and CHAPTERS[0] == "book/preface"


@pytest.mark.parametrize("docname", CHAPTERS, ids=[chapter_id(d) for d in CHAPTERS])
def test_chapter_executes(docname: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = REPO / f"{docname}.md"
    assert path.is_file(), f"{docname} is in _toc.yml but {path} does not exist"
    nb = jupytext.read(path)
    assert nb.metadata.get("kernelspec"), (
        f"{path.name} has no kernelspec in its front matter: Jupyter Book would skip its code cells"
    )
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert code_cells, f"{path.name} has no code cells"
    monkeypatch.setenv("MAXPO_QUICK", "1")
    monkeypatch.delenv("MAXPO_BOOK_BUILD", raising=False)
    client = nbclient.NotebookClient(
        nb,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
