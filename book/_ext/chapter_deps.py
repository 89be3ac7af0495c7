"""Incremental builds: re-execute a chapter when its source or the code and data it uses changed.

With ``execute_notebooks: cache`` myst-nb reuses a chapter's stored outputs
(jupyter-cache, in ``_build/.jupyter_cache``) as long as its code cells are
unchanged, and Sphinx re-reads only the chapters whose ``.md`` file changed.
Neither notices that a chapter's results changed because a module of
``maxpo`` it imports, or a committed results file it reads, did. This
extension closes that gap with one hash per chapter over

* the chapter's source,
* every module of ``maxpo`` its code cells import, transitively (imports read
  with :mod:`ast` from the package's files; a dotted name ``maxpo.x.y`` anywhere
  in a code cell, e.g. ``python -m maxpo.lab``, counts as an import),
* every file under ``book/data/`` and ``benchmarks/results/`` whose name, or
  one of whose folders as a path part, occurs in those cells or modules (a
  deliberately generous match: a spurious dependency costs a re-execution, a
  missed one a stale page).

A chapter whose hash differs from the one stored at its last execution is
re-read by Sphinx and its jupyter-cache entry dropped, so it executes again;
the others keep their outputs. ``MAXPO_BOOK_FORCE=1`` switches the build to
``execute_notebooks: force`` (CI and the test suite's ``-W`` build: every
chapter runs, nothing is taken from a cache).
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "maxpo"
DATA_DIRS = (ROOT / "book" / "data", ROOT / "benchmarks" / "results")
FORCE_ENV = "MAXPO_BOOK_FORCE"
HASHES_FILE = "maxpo_chapter_deps.json"

_CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```\s*$", re.S | re.M)
_DOTTED = re.compile(r"\bmaxpo(?:\.[A-Za-z_]\w*)+")


def code_cells(source: str) -> list[str]:
    """The code of every ``{code-cell}`` of a MyST notebook (front matter and ``:tag:`` lines dropped)."""
    cells = []
    for body in _CELL.findall(source):
        lines = body.splitlines()
        if lines and lines[0].strip() == "---":  # a cell's YAML options block
            end = next((i for i, ln in enumerate(lines[1:], 1) if ln.strip() == "---"), 0)
            lines = lines[end + 1:]
        cells.append("\n".join(ln for ln in lines if not ln.lstrip().startswith(":")))
    return cells


def module_file(name: str) -> Path | None:
    """The file of module ``name`` (``maxpo.x.y``) in the package, or ``None`` when there is none."""
    parts = name.split(".")
    if parts[0] != "maxpo":
        return None
    base = PACKAGE.joinpath(*parts[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imports(code: str, dotted: bool = False) -> set[str]:
    """Module names ``code`` imports from maxpo (including ``from maxpo.x import submodule``); with
    ``dotted``, also every ``maxpo.x.y`` named anywhere in it (a code cell's ``python -m maxpo.lab``)."""
    names = set(_DOTTED.findall(code)) if dotted else set()
    text = "\n".join(ln for ln in code.splitlines() if not ln.lstrip().startswith(("%", "!")))
    try:
        tree = ast.parse(text)
    except SyntaxError:
        tree = None
    if tree is not None:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
                names.update(f"{node.module}.{a.name}" for a in node.names)
    return {n for n in names if n == "maxpo" or n.startswith("maxpo.")}


def module_closure(code: Iterable[str]) -> list[Path]:
    """Files of every maxpo module the code imports, transitively, with their parent packages."""
    todo = set().union(*(_imports(c, dotted=True) for c in code))
    if todo:
        todo.add("maxpo")
    seen: dict[str, Path] = {}
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing maxpo.a.b runs maxpo and maxpo.a first
            mod = ".".join(parts[:i])
            path = module_file(mod)
            if path is None or mod in seen:
                continue
            seen[mod] = path
            todo |= _imports(path.read_text(encoding="utf-8")) - seen.keys()
            if path.name == "__init__.py" and (path.parent / "__main__.py").is_file():
                todo.add(f"{mod}.__main__")  # a package may be run as ``python -m``: count its entry point
    return sorted(set(seen.values()))


def data_files(texts: Iterable[str]) -> list[Path]:
    """Files under the data folders named in ``texts``: by file name or stem, or by one of their folders
    (the data root included) written as a path part, ``"lab"`` or ``lab/``."""
    blob = "\n".join(texts)
    out = []
    for root in DATA_DIRS:
        for path in sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []:
            rel = path.relative_to(root)
            folders = [root.name, *rel.parts[:-1]]
            words = {path.name, path.stem, *(f'"{f}"' for f in folders), *(f"{f}/" for f in folders)}
            if any(w and w in blob for w in words):
                out.append(path)
    return out


def dependencies(source_path: Path) -> list[Path]:
    """Everything a chapter's execution depends on: its source, the maxpo modules it uses, the data they read."""
    cells = code_cells(source_path.read_text(encoding="utf-8"))
    modules = module_closure(cells)
    texts = cells + [p.read_text(encoding="utf-8") for p in modules]
    return [source_path, *modules, *data_files(texts)]


def dependency_hash(source_path: Path) -> str:
    """SHA-256 over the paths (relative to the repository) and contents of :func:`dependencies`."""
    digest = hashlib.sha256()
    for path in dependencies(source_path):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _cache_dir(app: Any) -> Path:
    """Where myst-nb keeps the jupyter-cache (its own default: ``.jupyter_cache`` beside the HTML folder)."""
    path = app.config.nb_execution_cache_path
    return Path(path).resolve() if path else Path(app.outdir).parent.joinpath(".jupyter_cache").resolve()


def _on_config(app: Any, config: Any) -> None:
    if os.environ.get(FORCE_ENV, "") not in ("", "0"):
        config.nb_execution_mode = "force"


def _on_get_outdated(app: Any, env: Any, added: set[str], changed: set[str], removed: set[str]) -> list[str]:
    if app.config.nb_execution_mode != "cache":
        return []
    cache_dir = _cache_dir(app)
    store = cache_dir / HASHES_FILE
    try:
        stored: dict[str, str] = json.loads(store.read_text())
    except (OSError, ValueError):
        stored = {}
    current: dict[str, str] = {}
    for docname in sorted(env.found_docs):
        source = Path(env.doc2path(docname))
        if source.suffix == ".md" and "```{code-cell}" in source.read_text(encoding="utf-8"):
            current[docname] = dependency_hash(source)
    stale = sorted(d for d, h in current.items() if stored.get(d) != h)
    if stale and (cache_dir / "global.db").is_file():
        from jupyter_cache import get_cache

        cache = get_cache(str(cache_dir))
        paths = {str(Path(env.doc2path(d)).resolve()) for d in stale}
        for record in cache.list_cache_records():
            if record.uri and str(Path(record.uri).resolve()) in paths:
                cache.remove_cache(record.pk)
    if stale:
        print(f"chapter_deps: {len(stale)} chapter(s) to execute (source, maxpo code or data changed): "
              + ", ".join(stale))
    cache_dir.mkdir(parents=True, exist_ok=True)
    store.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
    return [d for d in stale if d not in added and d not in changed]


def setup(app: Any) -> dict[str, Any]:
    app.connect("config-inited", _on_config)
    app.connect("env-get-outdated", _on_get_outdated)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
