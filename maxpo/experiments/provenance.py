"""Where a result came from: command, code version, software, machine, time (git through :mod:`maxpo.provenance`)."""
from __future__ import annotations

import json
import math
import os
import platform
import sys
from pathlib import Path
from typing import Any

import torch

import maxpo
from maxpo.provenance import REPO, git_state, utc_now

__all__ = ["provenance", "git_commit", "clean_json", "write_json", "read_json"]

def git_commit(repo: Path = REPO) -> dict[str, Any]:
    """``{"commit": HEAD or None, "dirty": True if maxpo/ differs from HEAD}`` (None outside git)."""
    return git_state(["maxpo"], cwd=repo)


def provenance(command: str, seconds: float) -> dict[str, Any]:
    """Everything needed to say where a result came from."""
    return {
        "command": command,
        **git_commit(),
        "maxpo_version": maxpo.__version__,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "wall_seconds": round(seconds, 2),
        "date_utc": utc_now(),
    }


def clean_json(obj: Any, digits: int = 10) -> Any:
    """Strict-JSON copy: NaN and infinities become None, tuples lists, floats keep ``digits``
    significant digits, recursively."""
    if isinstance(obj, float):
        return float(f"{obj:.{digits}g}") if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): clean_json(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_json(v, digits) for v in obj]
    return obj


def write_json(data: dict[str, Any], path: str | Path, digits: int = 10) -> Path:
    """Write ``data`` as compact strict JSON (NaN -> null, ``digits`` significant digits),
    one top-level key per line, creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = clean_json(data, digits)
    body = ",\n".join(f"{json.dumps(k)}: {json.dumps(v, allow_nan=False, separators=(',', ':'))}"
                      for k, v in clean.items())
    path.write_text("{\n" + body + "\n}\n")
    return path


def read_json(path: str | Path) -> dict[str, Any]:
    """Read a results file written by :func:`write_json`."""
    return json.loads(Path(path).read_text())
