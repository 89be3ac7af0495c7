"""The package's layers, as the README's "Architecture" section states them, checked on the imports.

Every ``import maxpo...`` / ``from maxpo... import`` in ``maxpo/`` (at any depth
of the module, lazy imports included) is read with :mod:`ast` and its target
mapped to a layer. A module may import its own layer and the layers the table
allows, nothing else.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "maxpo"
CORE_MODULES = {"maxpo", "maxpo.estimators", "maxpo._validate", "maxpo.lstatistics", "maxpo.family"}

#: layer -> layers it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "reference": set(),
    "provenance": set(),  # maxpo.provenance: machine, versions, git; stdlib and torch only
    "live_glue": set(),  # maxpo.live_glue: the built book's glued numbers for make lab; stdlib only
    "theory": {"core", "reference", "provenance"},
    "figures": set(),  # maxpo.figures (viz, settings): plotly and sizes, nothing of maxpo
    "experiments": {"core", "reference", "theory", "figures", "provenance"},
    "lab": {"core", "figures", "provenance"},
    "integrations": {"core", "figures", "provenance"},
    "benchmarking": {"core", "figures", "provenance"},
    "explorers": {"core", "reference", "theory", "figures", "experiments", "provenance"},
}


def layer_of(module: str) -> str | None:
    if module != "maxpo" and not module.startswith("maxpo."):
        return None
    if module in CORE_MODULES:
        return "core"
    return module.split(".")[1]  # each folder of maxpo/ is one layer (and maxpo.provenance its own)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # "from maxpo import reference" imports the module maxpo.reference
            out += [f"maxpo.{a.name}" for a in node.names] if node.module == "maxpo" else [node.module]
    return out


def test_every_module_has_a_layer() -> None:
    unknown = [module_name(p) for p in PACKAGE.rglob("*.py") if layer_of(module_name(p)) not in ALLOWED]
    assert not unknown, f"modules outside every layer of the README's architecture: {unknown}"


def test_imports_follow_the_layers() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = layer_of(module_name(path))
        for target in imported_modules(path):
            there = layer_of(target)
            if there is None or there == here or there not in ALLOWED:
                # names imported from the maxpo root (advantages, METHODS, ...) are the core
                continue
            if there not in ALLOWED[here]:
                wrong.append(f"{module_name(path)} ({here}) imports {target} ({there})")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


@pytest.mark.parametrize("module, layer", [
    ("maxpo.estimators", "core"), ("maxpo.reference", "reference"), ("maxpo.theory.symbolic", "theory"),
    ("maxpo.figures.viz", "figures"), ("maxpo.explorers.base", "explorers"), ("maxpo.lab.train", "lab"),
    ("maxpo.provenance", "provenance"),
])
def test_layer_of(module: str, layer: str) -> None:
    assert layer_of(module) == layer
