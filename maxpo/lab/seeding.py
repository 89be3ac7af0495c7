"""Named, derived random streams: what makes runs repeatable and resumable.

Every random choice of a run is drawn from a stream named by the run's seed, a
purpose and the step, e.g. ``derive_seed(seed, "prompts", step)``. Nothing
carries over from step to step, so a resumed run draws exactly what the
uninterrupted run drew, runs of different methods with the same seed see the
same prompts and the same random numbers, and the draw does not depend on the
number of processes.
"""
from __future__ import annotations

import hashlib

import torch

__all__ = ["derive_seed", "uniforms"]


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any printable parts (stable across machines and Python runs)."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def uniforms(seed: int, n: int, t: int) -> torch.Tensor:
    """``(n, t)`` float32 numbers in ``[0, 1)`` on the CPU from ``seed`` (one per token to sample)."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    return torch.rand((n, t), generator=gen, dtype=torch.float32)
