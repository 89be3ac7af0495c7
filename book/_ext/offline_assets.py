"""Sphinx extension: the built book loads every script from its own ``_static``.

A Jupyter Book 1 build would otherwise fetch three things from CDNs when a
reader opens a page: MathJax (Sphinx's default ``mathjax_path``), the
ipywidgets HTML manager and RequireJS (myst-nb's default ``nb_ipywidgets_js``),
and, depending on the plotly renderer, plotly.js. The book must render with no
network, so this extension serves all three locally:

* **MathJax 3** comes from the ``sphinx-mathjax-offline`` Python package
  (MathJax 3.2.2 files). Only ``tex-chtml.js`` and the folders it loads from
  on demand (TeX extensions, CHTML fonts, menu, accessibility) are copied to
  ``_static/mathjax/``, and ``mathjax_path`` points there.
* **plotly.js** is the ``plotly.min.js`` shipped inside the installed
  ``plotly`` Python package, so the JavaScript always matches the figures'
  JSON. It is copied once to ``_static/plotly/`` and added (synchronously, before
  the page body) only to pages whose HTML contains a plotly figure. Figures
  themselves are emitted by :mod:`maxpo.figures.viz` as HTML that does not embed
  plotly.js, which keeps each page small.
* **ipywidgets**: the standalone ``embed.js`` of ``@jupyter-widgets/html-manager``
  (vendored in ``book/_ext/vendor/``, see its README) replaces myst-nb's CDN
  RequireJS + ``embed-amd.js`` pair. It renders the built-in widgets from the
  state that the build stores in the page; Python callbacks need a live kernel.
  Pages with widgets also get a few lines that let the manager's MathJax 2
  call (``MathJax.Hub.Queue``) work with MathJax 3.

It also removes sphinx-thebe's scripts from every page while the book's
``launch_buttons.thebe`` is off: Jupyter Book 1 always loads that extension,
which then adds its inline configuration script twice (a JavaScript
``const`` redeclaration error on every page) and names a CDN URL for a
feature the book does not use.

Nothing here is loaded from a network at build time either.
"""
from __future__ import annotations

import importlib.metadata
import os
import shutil
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.errors import ExtensionError

#: Python distribution that ships the MathJax 3 files.
MATHJAX_DISTRIBUTION = "sphinx-mathjax-offline"
#: Entry script, relative to the MathJax root, and the sub-folders it loads from.
MATHJAX_ENTRY = "tex-chtml.js"
MATHJAX_FOLDERS = ("a11y", "adaptors", "input", "output/chtml", "sre", "ui")
MATHJAX_FILES = ("output/chtml.js",)

VENDOR_DIR = Path(__file__).resolve().parent / "vendor"

#: Where each asset lands inside the HTML output's ``_static`` folder.
STATIC_MATHJAX = "mathjax"
STATIC_PLOTLY = "plotly/plotly.min.js"
STATIC_WIDGETS = "jupyter-widgets"

#: Marker that plotly's ``to_html`` puts on every figure's div.
PLOTLY_DIV_CLASS = "plotly-graph-div"
#: MIME type of the script tags that myst-nb writes for each displayed widget.
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"

#: The widget manager typesets labels with MathJax 2's ``MathJax.Hub.Queue``; with
#: MathJax 3 that throws. This maps the call onto MathJax 3 (``typesetPromise``)
#: before the manager renders the widgets (both run on window ``load``).
WIDGET_MATHJAX_SHIM = """window.addEventListener("load", function () {
  var mj = window.MathJax;
  if (mj && !mj.Hub) {
    mj.Hub = {Queue: function (job) {
      var el = job && job[2];
      if (el && mj.typesetPromise) { mj.typesetPromise([el]).catch(function () {}); }
    }};
  }
});"""


def mathjax_root() -> Path:
    """Folder holding ``tex-chtml.js`` inside the installed MathJax package."""
    try:
        dist = importlib.metadata.distribution(MATHJAX_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as err:
        raise ExtensionError(
            f"offline_assets: the Python package {MATHJAX_DISTRIBUTION!r} is not installed; "
            "it provides the MathJax 3 files that the book serves locally "
            "(pip install -r requirements.txt)"
        ) from err
    for path in dist.files or ():
        if path.name == MATHJAX_ENTRY:
            return Path(dist.locate_file(path)).parent
    raise ExtensionError(f"offline_assets: {MATHJAX_ENTRY} not found in {MATHJAX_DISTRIBUTION}")


def plotly_js_source() -> Path:
    """``plotly.min.js`` bundled with the installed ``plotly`` Python package."""
    import plotly

    path = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise ExtensionError(f"offline_assets: {path} is missing from the plotly package")
    return path


#: Set for the notebook kernels that the build starts (they inherit the environment):
#: ``maxpo.figures.viz`` then emits figures as HTML only, the one MIME type myst-nb renders.
BOOK_BUILD_ENV = "MAXPO_BOOK_BUILD"


def _configure(app: Sphinx, config: Config) -> None:
    mathjax_root()  # fail early, before any notebook is executed
    plotly_js_source()
    os.environ[BOOK_BUILD_ENV] = "1"
    config.mathjax_path = f"{STATIC_MATHJAX}/{MATHJAX_ENTRY}"
    config.nb_ipywidgets_js = {f"{STATIC_WIDGETS}/embed.js": {}}


def _add_plotly_where_needed(
    app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    if PLOTLY_DIV_CLASS in context.get("body", ""):
        # before the page body, synchronously: the figures' inline scripts call Plotly
        app.add_js_file(STATIC_PLOTLY, priority=200)


def _add_widget_mathjax_shim(
    app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    if WIDGET_VIEW_MIME in context.get("body", ""):
        app.add_js_file(None, body=WIDGET_MATHJAX_SHIM, priority=300)


def _thebe_enabled(app: Sphinx) -> bool:
    options = getattr(app.config, "html_theme_options", None) or {}
    return bool((options.get("launch_buttons") or {}).get("thebe"))


def _is_thebe_script(js: Any) -> bool:
    filename = str(getattr(js, "filename", "") or "")
    body = str((getattr(js, "attributes", None) or {}).get("body", ""))
    return filename.endswith("sphinx-thebe.js") or "THEBE_JS_URL" in body


def _drop_disabled_thebe(
    app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    scripts = context.get("script_files")
    if _thebe_enabled(app) or not isinstance(scripts, list):
        return
    scripts[:] = [js for js in scripts if not _is_thebe_script(js)]  # Sphinx restores it per page


def copy_offline_assets(outdir: Path) -> None:
    """Copy MathJax, plotly.js and the widget manager into ``outdir/_static``."""
    static = Path(outdir) / "_static"
    src = mathjax_root()
    dst = static / STATIC_MATHJAX
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src / MATHJAX_ENTRY, dst / MATHJAX_ENTRY)
    for folder in MATHJAX_FOLDERS:
        shutil.copytree(src / folder, dst / folder, dirs_exist_ok=True)
    for name in MATHJAX_FILES:
        (dst / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / name, dst / name)
    (static / STATIC_PLOTLY).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(plotly_js_source(), static / STATIC_PLOTLY)
    shutil.copytree(VENDOR_DIR / "jupyter-widgets", static / STATIC_WIDGETS, dirs_exist_ok=True)


def _copy_when_built(app: Sphinx, exception: Exception | None) -> None:
    if exception is None and app.builder is not None and app.builder.format == "html":
        copy_offline_assets(Path(app.outdir))


def setup(app: Sphinx) -> dict[str, Any]:
    # after myst-nb's and Sphinx's own defaults are in place
    app.connect("config-inited", _configure, priority=900)
    app.connect("html-page-context", _add_plotly_where_needed)
    app.connect("html-page-context", _add_widget_mathjax_shim)
    app.connect("html-page-context", _drop_disabled_thebe, priority=900)
    app.connect("build-finished", _copy_when_built)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
