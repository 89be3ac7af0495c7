"""The version gate shared by the TRL and verl integrations (no framework needed: fake modules)."""
from __future__ import annotations

import sys
import types

import pytest

from maxpo.integrations.versions import import_supported


def _fake(monkeypatch, version: str) -> types.ModuleType:
    module = types.ModuleType("fakefw")
    module.__version__ = version
    monkeypatch.setitem(sys.modules, "fakefw", module)
    return module


def test_supported_versions_are_returned(monkeypatch) -> None:
    for version in ("1.16.0", "1.16.3.dev0", "1.16.9rc1"):
        module = _fake(monkeypatch, version)
        assert import_supported("fakefw", "FakeFW", ">=1.16,<1.17", "1.16.0", "x") is module


@pytest.mark.parametrize("version", ["1.15.9", "1.17.0", "1.17.0rc1", "2.0"])
def test_other_versions_are_refused_with_what_and_why(monkeypatch, version: str) -> None:
    _fake(monkeypatch, version)
    with pytest.raises(RuntimeError, match=rf"supports FakeFW >=1.16,<1.17 \(tested with 1.16.0\), found fakefw "
                                           rf"{version}\. It patches internals; install 'fakefw>=1.16,<1.17'"):
        import_supported("fakefw", "FakeFW", ">=1.16,<1.17", "1.16.0", "It patches internals")


def test_a_missing_framework_says_how_to_install_it(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "fakefw", None)  # import fails
    with pytest.raises(ImportError, match=r"maxpo.integrations.fakefw needs FakeFW >=1,<2: pip install 'fakefw>=1,<2'"):
        import_supported("fakefw", "FakeFW", ">=1,<2", "1.0", "x")
