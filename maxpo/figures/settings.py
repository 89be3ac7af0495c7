"""Run-time switches shared by the chapters, the experiments and the tests."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

#: Environment variable that shrinks sample sizes so that every chapter runs fast
#: (set by the chapter-runner tests; the full book build leaves it unset).
QUICK_ENV = "MAXPO_QUICK"


def quick_mode() -> bool:
    """True when ``MAXPO_QUICK=1`` asks for small sample sizes."""
    return os.environ.get(QUICK_ENV, "0").strip().lower() in {"1", "true", "yes"}


def sized(full: T, quick: T) -> T:
    """Return ``quick`` in quick mode (``MAXPO_QUICK=1``) and ``full`` otherwise."""
    return quick if quick_mode() else full


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with torch's intra-op thread count set to ``threads`` (``None``: unchanged), then restore it."""
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
