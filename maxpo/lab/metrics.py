"""Metrics as JSON lines: one record per training step and per evaluation.

Records carry ``kind`` (``"train"`` or ``"eval"``) and ``step``. On resume the
file is cut back to the checkpoint's step, so a resumed run's file is the
uninterrupted run's file (up to timings).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = ["MetricsLog", "read_metrics"]


def _clean(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


class MetricsLog:
    """Append-only JSONL file of metric records."""

    def __init__(self, path: str | Path, enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled

    def append(self, record: dict[str, Any]) -> None:
        """Append one record (no-op when disabled, e.g. on non-main processes)."""
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(_clean(record)) + "\n")

    def truncate_after(self, step: int) -> None:
        """Drop train records with ``step > step`` and eval records with ``step > step``."""
        if not self.enabled or not self.path.exists():
            return
        kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= step]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        tmp.replace(self.path)


def read_metrics(path: str | Path, kind: str | None = None) -> list[dict[str, Any]]:
    """All records of a metrics file, optionally only those of one ``kind``."""
    out: list[dict[str, Any]] = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            if kind is None or rec.get("kind") == kind:
                out.append(rec)
    return out

