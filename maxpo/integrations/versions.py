"""Import a training framework, refusing versions whose internals the integration was not written for."""
from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["import_supported"]


def import_supported(module: str, display_name: str, supported: str, tested: str, relies_on: str) -> ModuleType:
    """Import ``module`` and return it if its version (ignoring pre- and dev-release tags) is in ``supported``.

    ``supported`` is a pip specifier such as ``">=1.16,<1.17"``; ``tested`` the
    version the integration was tested with; ``relies_on`` says, for the error
    message, what of the framework the integration depends on.

    Raises:
        ImportError: ``module`` (or ``packaging``) is not installed.
        RuntimeError: the installed version is outside ``supported``.
    """
    integration = f"maxpo.integrations.{module}"
    try:
        framework = importlib.import_module(module)
        from packaging.specifiers import SpecifierSet
        from packaging.version import Version
    except ImportError as exc:
        raise ImportError(
            f"{integration} needs {display_name} {supported}: pip install '{module}{supported}' ({exc})") from exc
    found = framework.__version__
    if Version(Version(found).base_version) not in SpecifierSet(supported):
        raise RuntimeError(
            f"{integration} supports {display_name} {supported} (tested with {tested}), found {module} {found}. "
            f"{relies_on}; install '{module}{supported}'.")
    return framework
