"""The book's sources hold no text mangled by a non-raw Python string.

A page written through ``"...\\text{...}"`` instead of ``r"..."`` gets a tab for
``\\t``, a form feed for ``\\f`` (``\\frac``), a backspace for ``\\b`` (``\\beta``),
a carriage return for ``\\r`` (``\\rangle``) and a newline for ``\\n``
(``\\nabla``, ``\\neq``). The first four leave control characters; the newline
leaves a line that starts with the rest of a LaTeX command. Both are checked
on every Markdown source of the book (fast: no build).
"""
from __future__ import annotations

import re

import pytest

from conftest import REPO

PAGES = sorted((REPO / "book").rglob("*.md"))
PAGES = [p for p in PAGES if "_build" not in p.parts]
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")
# the tails of LaTeX commands whose first letter a Python escape ate (\r, \n, \t, \f, \b)
TAIL = re.compile(r"^(angle\b|ightarrow|ho\b|abla\b|eq\b(?!ua)|ewline|ot\b|ext\{|imes\b|heta\b|au\b|"
                  r"rac\{|orall\b|eta\b|ar\{|inom\{|oldsymbol)")


def test_pages_found() -> None:
    assert len(PAGES) >= 12


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_control_characters_or_eaten_latex(page) -> None:
    problems = []
    for n, line in enumerate(page.read_text(encoding="utf-8").split("\n"), 1):
        if m := CONTROL.search(line):
            problems.append(f"line {n}: control character {m.group()!r}")
        if m := TAIL.match(line):
            problems.append(f"line {n} starts with {m.group()!r}: a LaTeX command split by an escape?")
    assert not problems, "\n".join(problems)


def test_the_check_sees_what_it_is_for(tmp_path) -> None:
    """Each mangling this test is for is caught (and clean LaTeX is not)."""
    samples = {"tab": "$g_{\text{loo-1}}$", "cr+lf": "$\\langle g, e\n" + "angle$", "ff": "$\frac{1}{2}$",
               "nl": "$\nabla J$"}
    for name, text in samples.items():
        lines = text.split("\n")
        assert any(CONTROL.search(s) or TAIL.match(s) for s in lines), name
    clean = r"$\langle g, e\rangle = \frac{1}{2}\nabla J_{\text{K}}$"
    assert not CONTROL.search(clean) and not TAIL.match(clean)
