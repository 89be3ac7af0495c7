# Jupyter server configuration for `make lab` (loaded from JUPYTER_CONFIG_PATH, see book/_jupyter/README.md).
#
# 1. A chapter stays byte-identical unless the reader edits it. Running a chapter
#    marks the notebook dirty (new outputs), and JupyterLab's autosave then asks
#    jupytext to write the .md again: jupytext's canonical form differs from the
#    chapters' hand-kept form (its version in the front matter, the kernelspec
#    order, a blank line after cell options, re-wrapped captions). The contents
#    manager below writes a chapter only when what a text notebook keeps (cell
#    types, sources and cell metadata, as jupytext would write them) changed;
#    outputs, the kernel's metadata and widget state are not part of a .md.
# 2. The prose keeps its numbers: JupyterLab's MyST renderer does not know
#    myst-nb's {glue:text} role, so the manager pastes the values of the last
#    `make book` (_build/jupyter_execute/<chapter>.glue.json) into the Markdown
#    cells it opens and puts the roles back before it saves (maxpo.live_glue).
# 3. No "Jupyter news" pop-up and no update check (they cover the explorers and
#    reach the network).
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jupytext
import nbformat
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager

from maxpo import live_glue

c = get_config()  # type: ignore[name-defined]  # noqa: F821  (provided by traitlets when it loads this file)

_JupytextManager = jupytext.build_async_jupytext_contents_manager_class(AsyncLargeFileManager)


def _kept_text(nb: nbformat.NotebookNode, fmt: str) -> str:
    """What the text file would hold for ``nb``'s cells, without the notebook-level metadata."""
    copy = nbformat.from_dict({**nb, "metadata": {}})
    return jupytext.writes(copy, fmt=fmt)


class ChapterContentsManager(_JupytextManager):  # type: ignore[misc, valid-type]
    """jupytext's contents manager that shows a chapter's glued numbers and leaves a text notebook alone when
    the reader changed no cell."""

    def _glued(self, path: str) -> dict[str, str]:
        # the build `make book` writes, or another one (MAXPO_GLUE_BUILD: a folder holding jupyter_execute/)
        build = os.environ.get("MAXPO_GLUE_BUILD") or Path(self.root_dir) / "_build"
        return live_glue.load_values(Path(build), path)

    async def get(self, path: str, content: bool = True, type: str | None = None, format: str | None = None,
                  **kwargs: Any) -> dict[str, Any]:
        model = await super().get(path, content=content, type=type, format=format, **kwargs)
        path = path.strip("/")
        if model.get("type") == "notebook" and path.endswith(".md") and model.get("content"):
            n = live_glue.paste_into_notebook(model["content"], self._glued(path))
            if n:
                self.log.info("maxpo: %s: the last build's numbers pasted into %d Markdown cells", path, n)
        return model

    async def save(self, model: dict[str, Any], path: str = "") -> dict[str, Any]:
        path = path.strip("/")
        if model.get("type") == "notebook" and path.endswith(".md") and model.get("content"):
            live_glue.restore_notebook(model["content"], self._glued(path))
        if model.get("type") == "notebook" and path.endswith(".md") and await self.file_exists(path):
            current = await self.super.get(path, content=True, type="file", format="text")
            fmt = "md:myst"
            try:
                unchanged = (_kept_text(nbformat.from_dict(model["content"]), fmt)
                             == _kept_text(jupytext.reads(current["content"], fmt=fmt), fmt))
            except Exception:  # noqa: BLE001  (anything unexpected: save as jupytext would)
                unchanged = False
            if unchanged:
                self.log.info("maxpo: %s has no edited cell; left as it is", path)
                return await self.get(path, content=False)
        return await super().save(model, path)


c.ServerApp.contents_manager_class = ChapterContentsManager
c.LabApp.news_url = None
c.LabApp.check_for_updates_class = "jupyterlab.handlers.announcements.NeverCheckForUpdate"
