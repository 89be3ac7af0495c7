"""``book/_ext/chapter_deps.py``: which files a chapter's execution depends on (incremental builds)."""
from __future__ import annotations

import sys
from pathlib import Path

from conftest import REPO

sys.path.insert(0, str(REPO / "book" / "_ext"))
import chapter_deps  # noqa: E402

CHAPTER = '''---
kernelspec:
  name: python3
---
# A chapter

Prose that names maxpo.lab does not count.

```{code-cell} ipython3
---
tags: [hide-input]
---
from maxpo.figures import viz
%matplotlib inline
```

```{code-cell} ipython3
import subprocess
subprocess.run(["python", "-m", "maxpo.experiments", "--help"])
```
'''


def _rel(paths: list[Path]) -> set[str]:
    return {p.relative_to(REPO).as_posix() for p in paths}


def test_code_cells_drop_options_and_keep_code() -> None:
    cells = chapter_deps.code_cells(CHAPTER)
    assert cells == ["from maxpo.figures import viz\n%matplotlib inline",
                     'import subprocess\nsubprocess.run(["python", "-m", "maxpo.experiments", "--help"])']


def test_dependencies_follow_imports_and_module_names(tmp_path: Path) -> None:
    page = tmp_path / "chapter.md"
    page.write_text(CHAPTER)
    deps = chapter_deps.dependencies(page)
    assert deps[0] == page
    mods = _rel([p for p in deps[1:] if p.suffix == ".py"])
    # imported directly, their parent packages, and the module run with -m
    assert {"maxpo/__init__.py", "maxpo/figures/__init__.py", "maxpo/figures/viz.py",
            "maxpo/experiments/__init__.py", "maxpo/experiments/__main__.py"} <= mods
    # the root package imports the core: the estimators are a dependency of every chapter using maxpo
    assert "maxpo/estimators.py" in mods
    # named only in prose: not a dependency
    assert "maxpo/lab/train.py" not in mods


def test_a_changed_module_changes_the_hash(tmp_path: Path, monkeypatch) -> None:
    pkg = tmp_path / "maxpo"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from maxpo.sub.b import B\n")
    (pkg / "sub" / "b.py").write_text("B = 1\n")
    (pkg / "other.py").write_text("O = 1\n")
    monkeypatch.setattr(chapter_deps, "ROOT", tmp_path)
    monkeypatch.setattr(chapter_deps, "PACKAGE", pkg)
    monkeypatch.setattr(chapter_deps, "DATA_DIRS", ())
    page = tmp_path / "c.md"
    page.write_text("```{code-cell} ipython3\nfrom maxpo.sub import B\n```\n")
    before = chapter_deps.dependency_hash(page)
    (pkg / "other.py").write_text("O = 2\n")  # not imported by the chapter
    assert chapter_deps.dependency_hash(page) == before
    (pkg / "sub" / "b.py").write_text("B = 2\n")  # imported through maxpo.sub's __init__
    assert chapter_deps.dependency_hash(page) != before
