"""Sphinx extension: every chapter page offers its notebook (``.ipynb``) in the download menu.

The chapters are MyST Markdown notebooks. sphinx-book-theme adds a ``.ipynb``
entry to a page's download button when the page context names an
``ipynb_source``, but myst-nb 1.x never sets it for Markdown notebooks. This
extension converts each chapter with jupytext (the notebook as a reader would
open it: code and text, no stored outputs) into ``_sources/<docname>.ipynb``
next to the copied source, and names it in the page context before the theme
builds its buttons. The link is relative, so it works offline.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import jupytext
import nbformat
from sphinx.application import Sphinx

#: sphinx-book-theme builds its header buttons in ``html-page-context`` at priority 501.
BEFORE_THEME_BUTTONS = 400


def is_notebook(source: Path) -> bool:
    """A MyST Markdown notebook: jupytext reads a kernelspec from its front matter."""
    return source.suffix == ".md" and bool(jupytext.read(source).metadata.get("kernelspec"))


def write_notebook(source: Path, target: Path) -> None:
    """Convert the MyST Markdown notebook ``source`` into an ``.ipynb`` file at ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(jupytext.read(source), str(target))


def _offer_notebook(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    if app.builder is None or app.builder.format != "html" or pagename not in app.env.found_docs:
        return
    source = Path(app.env.doc2path(pagename))
    if not is_notebook(source):
        return
    write_notebook(source, Path(app.outdir) / "_sources" / f"{pagename}.ipynb")
    context["ipynb_source"] = f"{pagename}.ipynb"


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("html-page-context", _offer_notebook, priority=BEFORE_THEME_BUTTONS)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
