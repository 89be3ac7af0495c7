"""Metrics as JSON lines: one record per training step and per evaluation.

Records carry ``kind`` (``"train"`` or ``"eval"``) and ``step``. On resume the
file is cut back to the checkpoint's step, so a resumed run's file is the
uninterrupted run's file (up to timings).
"""
from __future__ import annotations

import json
import math
import sys
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
        """Drop records with ``step > step``.

        A truncated last line (what a killed process leaves) is dropped too, with a
        note on stderr: it belongs to a step after the checkpoint, which is re-run.
        """
        if not self.enabled or not self.path.exists():
            return
        records = read_metrics(self.path, allow_truncated_tail=True)
        kept = [r for r in records if r.get("step", 0) <= step]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        tmp.replace(self.path)


def read_metrics(path: str | Path, kind: str | None = None, allow_truncated_tail: bool = False,
                 quiet: bool = False) -> list[dict[str, Any]]:
    """All records of a metrics file, optionally only those of one ``kind``.

    ``quiet`` skips the note about a dropped truncated last line (for a reader that only inspects the file).

    Raises:
        ValueError: a line that is not a JSON record, naming the file and line (a
            broken *last* line is skipped instead when ``allow_truncated_tail``).
    """
    path = Path(path)
    out: list[dict[str, Any]] = []
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict):
                raise ValueError("not an object")
        except ValueError:
            if allow_truncated_tail and i == len(lines) - 1:
                if quiet:
                    continue
                print(f"note: {path}: dropped the truncated last line {i + 1} "
                      "(a step after the checkpoint; it is re-run)",
                      file=sys.stderr)
                continue
            raise ValueError(f"{path}, line {i + 1}: not a JSON record (the file is truncated or corrupt)") from None
        if kind is None or rec.get("kind") == kind:
            out.append(rec)
    return out

