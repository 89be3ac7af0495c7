"""Where a result came from: command, code version, software, machine, time."""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

import maxpo

__all__ = ["provenance", "git_commit", "clean_json", "write_json", "read_json"]

_REPO = Path(__file__).resolve().parents[2]


def git_commit(repo: Path = _REPO) -> dict[str, Any]:
    """``{"commit": HEAD or None, "dirty": True if maxpo/ differs from HEAD}`` (None outside git)."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--", "maxpo"], cwd=repo, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        return {"commit": head, "dirty": bool(status)}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


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
        "date_utc": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
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
