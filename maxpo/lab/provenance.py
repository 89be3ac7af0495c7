"""Provenance of the lab's results: device, software versions, commit, command, times.

The machine, git and clock readers are :mod:`maxpo.provenance` (shared by every
layer); this module only chooses the fields of a run summary's ``provenance``.
"""
from __future__ import annotations

import importlib.metadata
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

import torch

from maxpo.provenance import device_name, git_state, utc_now

__all__ = ["provenance", "device_name", "utc_now"]


def provenance(device: torch.device, argv: list[str] | None = None) -> dict[str, Any]:
    """Where and how a result was produced: device, versions, git commit and dirty flag, command.

    Without git (a copy of the code) the commit is taken from ``$MAXPO_GIT_COMMIT``
    when set, marked ``git_commit_source``, with ``git_dirty`` unknown (``None``).
    """
    state = git_state()
    info: dict[str, Any] = {
        "device": device_name(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": state["commit"],
        "git_dirty": state["dirty"],
        "command": shlex.join(argv if argv is not None else [Path(sys.executable).name, *sys.argv]),
    }
    if state["commit"] is None and os.environ.get("MAXPO_GIT_COMMIT"):
        # a copy of the code without git (e.g. a device machine): the commit as the caller states it;
        # whether the copy was modified is unknown (git_dirty stays None)
        info.update(git_commit=os.environ["MAXPO_GIT_COMMIT"], git_commit_source="MAXPO_GIT_COMMIT")
    try:
        info["transformers"] = importlib.metadata.version("transformers")
    except importlib.metadata.PackageNotFoundError:
        pass
    return info
