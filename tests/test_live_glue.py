"""The live notebook keeps the prose's glued numbers (maxpo.live_glue, used by ``make lab``'s contents manager).

Expectations are written by hand: the formatted texts below follow Python's
``format`` rules for the values given, and the round trip is checked on the
bytes of the real chapter file.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_live_jupyterlab import _lab_contents_manager, _run_async

from maxpo import live_glue

from conftest import REPO


@pytest.mark.parametrize(("text", "spec", "shown"), [
    ("1.3999999999999995", ".2f", "1.40"),   # a float as myst-nb glues it, rounded by the role
    ("0.6999999999999997", ".2f", "0.70"),
    ("'higher than'", "", "higher than"),     # a glued str loses its quotes
    ("'higher than'", "s", "higher than"),
    ("7", "", "7"),
    ("7", "d", "7"),
    ("0.25", ".0%", "25%"),
    ("12.0", ".0f", "12"),
    ("3", ".1f", "3.0"),                      # an int glued, shown as a float
    ("'0.5'", ".2f", "0.50"),                 # a str holding a number, formatted as one
])
def test_format_text_by_hand(text: str, spec: str, shown: str) -> None:
    assert live_glue.format_text(text, spec) == shown


def test_format_text_agrees_with_myst_nb() -> None:
    """The role's own formatting function (what the built book shows) on the same inputs."""
    from myst_nb.core.variables import format_plain_text

    for text, spec in [("1.3999999999999995", ".2f"), ("'a b'", ""), ("7", "d"), ("0.25", ".1%"), ("2", "s"),
                       ("tensor(0.5000)", ""), ("[1, 2]", "")]:
        assert live_glue.format_text(text, spec) == format_plain_text(text, spec)


def test_a_bad_format_raises_and_paste_leaves_that_role() -> None:
    with pytest.raises(ValueError):
        live_glue.format_text("'not a number'", ".2f")
    src = "a {glue:text}`x:.2f`, b {glue:text}`y`, c {glue:text}`missing:.1f`, d {glue:text}`other::k`."
    out = live_glue.paste(src, {"x": "'words'", "y": "'fine'"})
    assert out == "a {glue:text}`x:.2f`, b fine, c {glue:text}`missing:.1f`, d {glue:text}`other::k`."


def _chapter_keys(text: str) -> list[str]:
    return sorted({m.group(1).rsplit(":", 1)[0] for m in re.finditer(r"\{glue:text\}`([^`]+)`", text)})


def test_the_contents_manager_pastes_the_last_builds_numbers_and_saves_the_chapter_unchanged(
        tmp_path: Path) -> None:
    """A chapter opened through make lab's contents manager shows the glued values of the build (a glue file
    written here by hand) instead of the roles; saved unedited it stays byte-identical; an edited cell is saved
    as the reader wrote it while the other cells keep their roles."""
    chapter = "book/baselines.md"
    (tmp_path / "book").mkdir()
    source = (REPO / chapter).read_bytes()
    (tmp_path / chapter).write_bytes(source)
    keys = _chapter_keys(source.decode())
    assert "bl_s_sum" in keys and len(keys) > 10
    # values as myst-nb stores them: text/plain of each glued object; every key a distinct number
    glued = {key: {"data": {"text/plain": f"{i + 0.25}"}, "output_type": "display_data"}
             for i, key in enumerate(keys)}
    glue_path = tmp_path / "_build" / "jupyter_execute" / "book" / "baselines.glue.json"
    glue_path.parent.mkdir(parents=True)
    glue_path.write_text(json.dumps(glued))
    assert live_glue.glue_file(tmp_path / "_build", chapter) == glue_path

    manager = _lab_contents_manager(tmp_path)
    nb = _run_async(manager.get(chapter))["content"]
    markdown = [c for c in nb["cells"] if c["cell_type"] == "markdown"]
    shown = "\n".join(c["source"] for c in markdown)
    assert "{glue:text}" not in shown
    i = keys.index("bl_s_sum")
    assert f"they sum to {i + 0.25:.2f} $= K\\hat\\rho$" in shown  # the role was `bl_s_sum:.2f`

    for j, cell in enumerate(c for c in nb["cells"] if c["cell_type"] == "code"):  # as after Run All
        cell["execution_count"] = j + 1
        cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "ran\n"}]
    _run_async(manager.save({"type": "notebook", "format": "json", "content": nb}, chapter))
    assert (tmp_path / chapter).read_bytes() == source, "saving the unedited chapter rewrote it"

    nb = _run_async(manager.get(chapter))["content"]
    edited = next(c for c in nb["cells"] if c["cell_type"] == "markdown" and "they sum to" in c["source"])
    roles_in_edited = edited["metadata"][live_glue.METADATA_KEY].count("{glue:text}")
    assert roles_in_edited >= 2
    edited["source"] += "\n\nA note of the reader."
    _run_async(manager.save({"type": "notebook", "format": "json", "content": nb}, chapter))
    saved = (tmp_path / chapter).read_text()
    assert "A note of the reader." in saved
    assert f"they sum to {i + 0.25:.2f}" in saved  # the reader's cell as they saw it
    assert saved.count("{glue:text}") == source.decode().count("{glue:text}") - roles_in_edited
    assert live_glue.METADATA_KEY not in saved


def test_no_build_means_no_change(tmp_path: Path) -> None:
    assert live_glue.load_values(tmp_path / "_build", "book/baselines.md") == {}
    nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": "x {glue:text}`k:.2f`"}]}
    assert live_glue.paste_into_notebook(nb, {}) == 0 and nb["cells"][0]["source"] == "x {glue:text}`k:.2f`"
