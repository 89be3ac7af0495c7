"""The built book's glued numbers in the live notebook.

A chapter's prose takes its numbers from cells through myst-nb's
``{glue:text}`key:format``` role. Jupyter Book fills them in when it builds
the HTML; JupyterLab's MyST renderer (``jupyterlab-myst``) does not know the
role, so in ``make lab`` the sentences would lose their numbers. ``make lab``'s
contents manager (``book/_jupyter/jupyter_server_config.py``) therefore pastes
the values of the last ``make book`` into the Markdown cells when it opens a
chapter (:func:`paste_into_notebook`) and puts the roles back before it saves
(:func:`restore_notebook`), so a chapter the reader did not edit stays
byte-identical on disk.

The values come from the file myst-nb writes next to each executed chapter,
``_build/jupyter_execute/<chapter>.glue.json`` (key -> the glued output, whose
``text/plain`` the role formats). A key that file does not hold (no build yet,
or a build older than the chapter) keeps its role: it shows nothing, as before.
"""
from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["GLUE_ROLE", "METADATA_KEY", "format_text", "glue_file", "load_values", "paste",
           "paste_into_notebook", "restore_notebook"]

#: ``{glue:text}`key``` or ``{glue:text}`key:format```; the key is what precedes the last colon.
GLUE_ROLE = re.compile(r"\{glue:text\}`([^`]+)`")
#: Cell metadata key under which :func:`paste_into_notebook` keeps a cell's source with its roles.
METADATA_KEY = "maxpo_glue_source"


def glue_file(build_dir: Path, chapter: str) -> Path:
    """Where myst-nb keeps the glued values of ``chapter`` (a path like ``book/lab.md``, relative to the book's
    root) after a build into ``build_dir``."""
    return Path(build_dir) / "jupyter_execute" / Path(chapter).with_suffix(".glue.json")


def load_values(build_dir: Path, chapter: str) -> dict[str, str]:
    """Key -> ``text/plain`` of every value glued in ``chapter`` by the last build (empty when there is none)."""
    path = glue_file(build_dir, chapter)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    out = {}
    for key, output in data.items():
        text = output.get("data", {}).get("text/plain") if isinstance(output, Mapping) else None
        if isinstance(text, str):
            out[key] = text
    return out


def format_text(text: str, spec: str) -> str:
    """A glued ``text/plain`` as the role shows it, with myst-nb's rules: the text is read back as a Python
    literal when it is one (so a string loses its quotes); the last character of ``spec`` picks the type it is
    converted to (``s`` str; ``b c d o x X`` int; ``e E f F g G n %`` float), then ``format(value, spec)``;
    an empty spec gives ``str(value)``. Raises ``ValueError`` when the value does not convert."""
    try:
        value: Any = ast.literal_eval(text)
    except (SyntaxError, ValueError):
        value = text
    if spec == "":
        return str(value)
    kind = spec[-1]
    if kind == "s":
        value = str(value)
    elif kind in "bcdoxX":
        value = int(value)
    elif kind in "eEfFgGn%":
        value = float(value)
    return format(value, spec)


def paste(source: str, values: Mapping[str, str]) -> str:
    """``source`` with every ``{glue:text}`` role whose key is in ``values`` replaced by its formatted text.

    A role with an unknown key, a reference to another document (``doc::key``) or a value its format does not
    accept is left as it is."""
    def one(m: re.Match[str]) -> str:
        key, _, spec = m.group(1).rpartition(":") if ":" in m.group(1) else (m.group(1), "", "s")
        if key not in values:
            return m.group(0)
        try:
            return format_text(values[key], spec)
        except (ValueError, TypeError):
            return m.group(0)

    return GLUE_ROLE.sub(one, source)


def _source(cell: Mapping[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def paste_into_notebook(nb: Any, values: Mapping[str, str]) -> int:
    """Paste ``values`` into every Markdown cell of ``nb`` (a notebook dict, changed in place); each changed
    cell keeps its original source in its metadata under :data:`METADATA_KEY`. Returns the number of cells
    changed."""
    changed = 0
    for cell in nb["cells"]:
        if cell.get("cell_type") != "markdown":
            continue
        original = _source(cell)
        pasted = paste(original, values)
        if pasted != original:
            cell["source"] = pasted
            cell.setdefault("metadata", {})[METADATA_KEY] = original
            changed += 1
    return changed


def restore_notebook(nb: Any, values: Mapping[str, str]) -> int:
    """Undo :func:`paste_into_notebook` before a save (``nb`` changed in place): a cell whose source is still
    what pasting ``values`` into its kept original gives gets the original back (the reader did not edit it);
    an edited cell keeps the reader's text. The metadata key is removed either way. Returns the number of cells
    restored."""
    restored = 0
    for cell in nb["cells"]:
        meta = cell.get("metadata") or {}
        if METADATA_KEY not in meta:
            continue
        original = meta.pop(METADATA_KEY)
        if _source(cell) == paste(original, values):
            cell["source"] = original
            restored += 1
    return restored
