"""Sphinx extension: the book's own layout rules (``static/page_layout.css``) on every page.

Display equations that are wider than the text column, which happens on a
phone, get a horizontal scroll box of their own instead of being clipped.
``tests/test_browser.py`` checks every page at 1280 and 390 px.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from sphinx.application import Sphinx

STATIC = Path(__file__).resolve().parent / "static"
CSS = "page_layout.css"


def _add_static_path(app: Sphinx) -> None:
    if str(STATIC) not in app.config.html_static_path:
        app.config.html_static_path.append(str(STATIC))


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("builder-inited", _add_static_path)
    app.add_css_file(CSS)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
