"""Provenance of results: machine, software versions, commit, command, times."""
from __future__ import annotations

import importlib.metadata
import os
import platform
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

__all__ = ["provenance", "device_name", "utc_now"]


def utc_now() -> str:
    """Current time in UTC, ISO 8601, seconds."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def device_name(device: torch.device) -> str:
    """Human-readable description of the device (GPU name, or CPU model and threads)."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU: {cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"


def _git(*args: str) -> str | None:
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def provenance(device: torch.device, argv: list[str] | None = None) -> dict[str, Any]:
    """Where and how a result was produced: device, versions, git commit and dirty flag, command.

    Without git (a copy of the code) the commit is taken from ``$MAXPO_GIT_COMMIT``
    when set, marked ``git_commit_source``, with ``git_dirty`` unknown (``None``).
    """
    status = _git("status", "--porcelain")
    commit = _git("rev-parse", "HEAD")
    info: dict[str, Any] = {
        "device": device_name(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": commit,
        "git_dirty": None if status is None else bool(status),
        "command": shlex.join(argv if argv is not None else [Path(sys.executable).name, *sys.argv]),
    }
    if commit is None and os.environ.get("MAXPO_GIT_COMMIT"):
        # a copy of the code without git (e.g. a device machine): the commit as the caller states it;
        # whether the copy was modified is unknown (git_dirty stays None)
        info.update(git_commit=os.environ["MAXPO_GIT_COMMIT"], git_commit_source="MAXPO_GIT_COMMIT")
    try:
        info["transformers"] = importlib.metadata.version("transformers")
    except importlib.metadata.PackageNotFoundError:
        pass
    return info
