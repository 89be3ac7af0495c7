"""Run-time switches shared by the chapters, the experiments and the tests."""
from __future__ import annotations

import os
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
