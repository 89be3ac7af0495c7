"""Wall-clock timing of estimator calls and a description of the machine that ran them.

The one place where the package times code: the computing chapter's
build-time measurements and ``benchmarks/bench_advantages.py`` both use it.

* :func:`time_call` -- seconds per call of a function, over repetitions that fill
  a time budget, with device synchronisation for CUDA.
* :func:`time_methods` -- :func:`time_call` of ``maxpo.advantages`` (and of
  ``torch.sort``, the floor of any sort-based method) over sizes and methods.
* :func:`machine_description` -- CPU or GPU model, cores, threads, versions and
  the allocator settings that change small-group CPU timings (defined in
  :mod:`maxpo.provenance`, re-exported here).
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Literal

import torch

import maxpo
from maxpo.figures.settings import torch_threads
from maxpo.provenance import machine_description

__all__ = ["machine_description", "time_call", "time_methods"]

Statistic = Literal["min", "median"]


def _sync(device: torch.device | None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], *, device: torch.device | None = None, min_time: float = 0.05,
              max_reps: int = 50, warmup: int = 1, min_reps: int = 5, statistic: Statistic = "min") -> float:
    """Seconds per call of ``fn`` over repetitions filling ``min_time`` (at least ``min_reps``, at most ``max_reps``).

    ``statistic="min"`` (the default, as :mod:`timeit` recommends: on a shared
    machine the other repetitions measure the neighbours as much as the code)
    or ``"median"``. On a CUDA ``device`` every call is followed by a
    synchronisation, so the time is the kernels', not the launch's.
    """
    if statistic not in ("min", "median"):
        raise ValueError(f"statistic must be 'min' or 'median', got {statistic!r}")
    for _ in range(warmup):
        fn()
    _sync(device)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_reps and (time.perf_counter() - start < min_time or len(times) < min_reps):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return min(times) if statistic == "min" else statistics.median(times)


def time_methods(sizes: Sequence[tuple[int, int, int]], methods: Sequence[str], min_time: float = 0.05,
                 seed: int = 0, threads: int | None = 1) -> list[dict[str, object]]:
    """Time ``maxpo.advantages`` for each ``(groups, B, K)`` and method on float32 CPU rewards.

    The method name ``"sort"`` times ``torch.sort`` of the same tensor (the floor
    of any sort-based method). ``threads`` sets torch's intra-op threads for the
    measurement (restored afterwards; ``None`` leaves them alone): one thread
    is far less noisy on a shared machine. Returns one row per size and
    method: ``groups``, ``B``, ``K``, ``method``, ``seconds`` (best of the repetitions).
    """
    gen = torch.Generator().manual_seed(seed)
    rows: list[dict[str, object]] = []
    with torch_threads(threads):
        for groups, b, k in sizes:
            x = torch.rand(groups, b, generator=gen)
            for name in methods:
                def fn(x: torch.Tensor = x, name: str = name, k: int = k) -> object:
                    return torch.sort(x, dim=-1) if name == "sort" else maxpo.advantages(x, k, name)
                rows.append({"groups": groups, "B": b, "K": k, "method": name,
                             "seconds": time_call(fn, min_time=min_time)})
    return rows
