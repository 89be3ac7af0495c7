"""Progress bars: tqdm when it is installed, a plain periodic printout otherwise.

The GPU machines may lack tqdm; the lab must run there unchanged.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator, Sized
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["progress"]

try:  # pragma: no cover - which branch runs depends on the machine
    from tqdm.auto import tqdm as _tqdm
except ImportError:  # pragma: no cover
    _tqdm = None


class _Plain(Generic[T]):
    """A minimal stand-in for tqdm: prints ``desc i/n`` about ten times, to stderr."""

    def __init__(self, it: Iterable[T], desc: str, total: int | None, disable: bool) -> None:
        self.it, self.desc, self.disable = it, desc, disable
        self.total = total if total is not None else (len(it) if isinstance(it, Sized) else None)
        self.postfix = ""

    def set_postfix(self, **kw: object) -> None:
        self.postfix = " ".join(f"{k}={v}" for k, v in kw.items())

    def __iter__(self) -> Iterator[T]:
        every = max(1, (self.total or 100) // 10)
        t0 = time.perf_counter()
        for i, x in enumerate(self.it):
            yield x
            if not self.disable and ((i + 1) % every == 0 or i + 1 == self.total):
                elapsed = time.perf_counter() - t0
                print(f"{self.desc}: {i + 1}/{self.total or '?'} ({elapsed:.0f}s) {self.postfix}",
                      file=sys.stderr, flush=True)


def progress(it: Iterable[T], desc: str = "", total: int | None = None, disable: bool = False) -> Iterable[T]:
    """Wrap an iterable in a progress bar (tqdm if available)."""
    if _tqdm is not None:
        return _tqdm(it, desc=desc, total=total, disable=disable, dynamic_ncols=True, mininterval=1.0)
    return _Plain(it, desc, total, disable)
