"""Where a result came from: the one place the package reads the machine, the versions and git.

A layer of its own (standard library and torch only) that every layer above
the core may import: the lab's run summaries (:mod:`maxpo.lab.provenance`),
the experiments' results files (:mod:`maxpo.experiments.provenance`), the
benchmark timings (:mod:`maxpo.benchmarking.timing`) and the scripts in
``benchmarks/`` all describe their machine and code version through it.

* :func:`utc_now` -- the current time, UTC, ISO 8601 to the second.
* :func:`cpu_model` -- the CPU's model name (``/proc/cpuinfo``), ``None`` where unreadable.
* :func:`device_name` -- one line naming a device: GPU model and CUDA version, or CPU model, cores, torch threads.
* :func:`machine_description` -- the machine as a dict (platform, CPU or GPU, cores, threads, versions,
  allocator settings).
* :func:`git` / :func:`git_state` -- a git command's output in the repository, and the commit with a
  dirty flag over chosen paths (``None`` for both outside git).
"""
from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import torch

__all__ = ["REPO", "cpu_model", "device_name", "git", "git_state", "machine_description", "utc_now"]

#: The repository holding the package (its git work tree when there is one).
REPO = Path(__file__).resolve().parents[1]


def utc_now() -> str:
    """Current time in UTC, ISO 8601, seconds (``2026-01-31T12:00:00+00:00``)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def cpu_model() -> str | None:
    """The CPU's ``model name`` from ``/proc/cpuinfo``; ``None`` where that file is missing or has none."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def device_name(device: torch.device | str) -> str:
    """One line naming ``device``: ``"<GPU> (CUDA <version>)"`` or ``"CPU: <model>, <n> cores, torch threads <t>"``."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    cpu = cpu_model() or platform.processor() or platform.machine()
    return f"CPU: {cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"


def machine_description(device: torch.device | str = "cpu") -> dict[str, object]:
    """Where a measurement ran: platform, CPU (or GPU) model, cores, torch threads, versions, allocator settings.

    Keys: ``platform``, ``processor``, ``cpu_count``, ``torch_threads``,
    ``python``, ``torch``, ``device``, ``allocator_env`` (``MALLOC_*``,
    ``LD_PRELOAD``, ``OMP_NUM_THREADS``: fresh glibc blocks over 128 KiB cost
    page faults, which changes small-group CPU timings), and ``gpu`` on CUDA
    or ``cpu_model`` on the CPU.
    """
    device = torch.device(device)
    info: dict[str, object] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(device),
        "allocator_env": {k: v for k, v in os.environ.items()
                          if k.startswith("MALLOC_") or k in ("LD_PRELOAD", "OMP_NUM_THREADS")},
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    else:
        info["cpu_model"] = cpu_model() or info["processor"]
    return info


def git(*args: str, cwd: Path = REPO) -> str | None:
    """Stripped standard output of ``git <args>`` run in ``cwd``; ``None`` when git is missing, fails or hangs."""
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state(paths: Sequence[str] = (), *, untracked: bool = True, cwd: Path = REPO) -> dict[str, object]:
    """``{"commit": HEAD, "dirty": bool}`` of the repository; both ``None`` outside git.

    ``dirty`` is true when ``git status --porcelain`` lists a change under
    ``paths`` (the whole work tree when empty); ``untracked=False`` ignores
    files git does not track.
    """
    head = git("rev-parse", "HEAD", cwd=cwd)
    flags = [] if untracked else ["--untracked-files=no"]
    status = git("status", "--porcelain", *flags, *(["--", *paths] if paths else []), cwd=cwd)
    if head is None or status is None:
        return {"commit": None, "dirty": None}
    return {"commit": head, "dirty": bool(status)}
