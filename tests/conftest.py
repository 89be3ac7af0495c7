"""Shared fixtures: the chapter list from ``_toc.yml``, one book build per session, a local server.

The book is built at most once per test session (``built_book``), into a
temporary folder so that it never clobbers a developer's ``_build``; the
build test and the browser test both use it. Set ``MAXPO_BOOK_HTML`` to the
``html`` folder of an existing build to skip building (for iterating on the
browser test); the build test then checks that folder and skips the
exit-code test.
"""
from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
#: Reuse an existing build's html folder instead of building (development only).
REUSE_HTML_ENV = "MAXPO_BOOK_HTML"


def toc_docnames() -> list[str]:
    """Every document in ``_toc.yml`` (root first), as docnames like ``book/objective``."""
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    names = [toc["root"]]

    def walk(entries: list[dict]) -> None:
        for entry in entries or []:
            if "file" in entry:
                names.append(entry["file"])
            walk(entry.get("sections", []))
            walk(entry.get("chapters", []))

    for part in toc.get("parts", []):
        walk(part.get("chapters", []))
    walk(toc.get("chapters", []))
    return [n.removesuffix(".md") for n in names]


def chapter_id(docname: str) -> str:
    """Test id of a chapter: its file name without folder or suffix."""
    return Path(docname).name


@dataclass(frozen=True)
class BuiltBook:
    html: Path
    returncode: int | None  # None when an existing build was reused
    wall_s: float | None
    log: str

    def page(self, docname: str) -> Path:
        return self.html / f"{docname}.html"


@pytest.fixture(scope="session")
def built_book(tmp_path_factory: pytest.TempPathFactory) -> BuiltBook:
    """The book, built once with ``jupyter-book build -W --keep-going --all`` (or reused)."""
    reuse = os.environ.get(REUSE_HTML_ENV)
    if reuse:
        html = Path(reuse).resolve()
        if not (html / "index.html").is_file():
            pytest.fail(f"{REUSE_HTML_ENV}={reuse} has no index.html")
        return BuiltBook(html, None, None, f"reused build at {html}")

    out = tmp_path_factory.mktemp("book")
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb), "build", "-W", "--keep-going", "--all", "--path-output", str(out), "."]
    env = {k: v for k, v in os.environ.items() if k != "MAXPO_QUICK"}  # the real book
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - start
    log = proc.stdout + proc.stderr
    (out / "build.log").write_text(log)
    print(f"\njupyter-book build: exit {proc.returncode}, wall time {wall:.1f} s (log: {out / 'build.log'})")
    return BuiltBook(out / "_build" / "html", proc.returncode, wall, log)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="session")
def book_server(built_book: BuiltBook) -> Iterator[str]:
    """Base URL (``http://127.0.0.1:PORT``) of a local server for the built HTML."""
    handler = functools.partial(_QuietHandler, directory=str(built_book.html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
