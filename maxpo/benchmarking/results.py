"""Read the committed benchmark results (``benchmarks/results/*.json``) with their provenance.

The files are written by ``benchmarks/bench_advantages.py``. Schema (one file
per run; every number in a file comes from one process on one machine)::

    {
      "benchmark": str,                 # what was timed
      "machine": {"device": "cpu" | "cuda[:i]", "gpu": str (cuda only),
                  "cpu_model": str (cpu only), "torch": str, "python": str, ...},
      "maxpo_version": str, "commit": str, "command": str,
      "date": ISO-8601 str, "wall_s": float,
      "results": [{"groups": int, "B": int, "K": int, "dtype": str,
                   "sort_s": float, "maxpo_s": float, "maxpo_over_sort": float,
                   "pairwise_s": float (optional), "pairwise_over_maxpo": float (optional)}, ...]
    }

:func:`load_results` validates the fields the book uses and says which file
and which field is wrong, so a schema change fails the build with a clear
message instead of drawing an empty figure.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["BenchmarkRun", "DEFAULT_RESULTS_DIR", "REQUIRED_ROW_FIELDS", "load_results", "ratio_traces"]

#: Where ``benchmarks/bench_advantages.py`` writes its results, in a source checkout.
DEFAULT_RESULTS_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "results"

#: Fields every result row must have.
REQUIRED_ROW_FIELDS = ("groups", "B", "K", "maxpo_s", "sort_s")
#: Provenance fields every file must have.
REQUIRED_RUN_FIELDS = ("machine", "commit", "command", "date", "results")


@dataclass(frozen=True)
class BenchmarkRun:
    """One results file: where it ran and what it measured."""

    path: Path
    device: str  # "cpu" or "cuda..."
    hardware: str  # GPU name or CPU model
    torch: str
    commit: str
    command: str
    date: str
    wall_s: float | None
    rows: list[dict[str, Any]] = field(repr=False)
    setting: str = ""  # CPU threads and allocator environment, when recorded

    @property
    def is_gpu(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def label(self) -> str:
        """Short legend label: hardware, setting and date."""
        setting = f", {self.setting}" if self.setting else ""
        return f"{self.hardware}{setting} ({self.date[:10]})"

    def provenance(self) -> str:
        """One line: hardware, torch, commit, date, command, wall time."""
        wall = f", {self.wall_s:.0f} s" if self.wall_s is not None else ""
        return (f"{self.hardware}, torch {self.torch}, commit {self.commit[:12]}, {self.date}{wall}: "
                f"`{self.command}`")


def _parse(path: Path) -> BenchmarkRun:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    missing = [f for f in REQUIRED_RUN_FIELDS if f not in data]
    if missing:
        raise ValueError(f"{path}: missing field(s) {missing}; expected the schema in maxpo.benchmarking.results")
    machine = data["machine"]
    if not isinstance(machine, dict) or "device" not in machine:
        raise ValueError(f"{path}: 'machine' must be an object with a 'device' field")
    rows = data["results"]
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"{path}: 'results' must be a non-empty list")
    for n, row in enumerate(rows):
        gone = [f for f in REQUIRED_ROW_FIELDS if f not in row]
        if gone:
            raise ValueError(f"{path}: results[{n}] lacks {gone}")
    device = str(machine["device"])
    hardware = str(machine.get("gpu") or machine.get("cpu_model") or machine.get("processor") or device)
    parts = []
    if device == "cpu" and machine.get("torch_threads"):
        parts.append(f"{machine['torch_threads']} thread{'s' if machine['torch_threads'] != 1 else ''}")
    parts += [f"{k}={v}" for k, v in sorted((machine.get("allocator_env") or {}).items())]
    return BenchmarkRun(path=path, device=device, hardware=hardware, torch=str(machine.get("torch", "?")),
                        commit=str(data["commit"]), command=str(data["command"]), date=str(data["date"]),
                        wall_s=data.get("wall_s"), rows=rows, setting=", ".join(parts))


def load_results(folder: str | Path = DEFAULT_RESULTS_DIR) -> list[BenchmarkRun]:
    """Every ``*.json`` in ``folder`` (sorted by name); an absent folder gives an empty list."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return [_parse(p) for p in sorted(folder.glob("*.json"))]


def ratio_traces(runs: list[BenchmarkRun], field: str, colors: tuple[str, ...] = ("#1f77b4",)) -> list[Any]:
    """One plotly line per run: ``field`` (a ratio such as ``maxpo_over_sort``) against B.

    GPU runs are solid, CPU runs dotted; the legend names the hardware, date and
    device. Rows without ``field`` are skipped. With no runs, one empty trace
    named "no committed results" (so a figure with a menu keeps a fixed trace count).
    """
    import plotly.graph_objects as go

    traces = []
    for i, run in enumerate(runs):
        rows = sorted((row for row in run.rows if field in row), key=lambda row: row["B"])
        traces.append(go.Scatter(
            x=[row["B"] for row in rows], y=[row[field] for row in rows], mode="lines+markers",
            name=f"{run.label} [{run.device}]",
            text=[f"groups={row['groups']}, K={row['K']}, {row.get('dtype', '?')}" for row in rows],
            line=dict(color=colors[i % len(colors)], dash="solid" if run.is_gpu else "dot")))
    return traces or [go.Scatter(x=[None], y=[None], name="no committed results")]
