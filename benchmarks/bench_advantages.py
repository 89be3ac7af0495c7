"""Time ``maxpo.advantages`` against ``torch.sort`` of the same rewards, against the
quadratic ``maxpo_pairwise`` form and against a mixture objective (the harmonic mixture
``{K: 1/K for K < B}``, MaxRL's form, the largest mixture a group of B allows), in one
run, and write the ratios with the machine.

    python benchmarks/bench_advantages.py --device cpu --out benchmarks/results/cpu.json
    python benchmarks/bench_advantages.py --device cuda --out benchmarks/results/h100.json

Ratios, not absolute times, are the result: every number in one file comes from
the same process on the same machine.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

import maxpo
from maxpo.benchmarking.timing import time_call
from maxpo.provenance import git_state, machine_description

SIZES = [(4096, 16, 4), (1024, 64, 8), (256, 256, 32), (64, 1024, 64), (16, 4096, 256)]


def _time(fn: Callable[[], object], device: torch.device, min_time: float, max_reps: int) -> float:
    """Median seconds per call after three warm-up calls (weight caches, CUDA context, allocator)."""
    return time_call(fn, device=device, min_time=min_time, max_reps=max_reps, warmup=3, statistic="median")


def git_commit() -> str:
    """HEAD, with "+dirty" when the measured code (the package or these scripts) has uncommitted changes."""
    state = git_state(["maxpo", "benchmarks/*.py"], untracked=False)
    if state["commit"] is None:
        return "unknown"
    return f"{state['commit']}{'+dirty' if state['dirty'] else ''}"


def run(device: torch.device, sizes: list[tuple[int, int, int]], min_time: float, pairwise_max_b: int,
        dtype: torch.dtype) -> list[dict[str, object]]:
    rows = []
    gen = torch.Generator().manual_seed(0)
    for groups, b, k in sizes:
        rewards = torch.rand(groups, b, generator=gen).to(device=device, dtype=dtype)
        t_sort = _time(lambda rewards=rewards: torch.sort(rewards, dim=-1), device, min_time, 2000)
        t_maxpo = _time(lambda rewards=rewards, k=k: maxpo.advantages(rewards, k), device, min_time, 2000)
        harmonic = {kk: 1.0 / kk for kk in range(1, b)}
        t_mix = _time(lambda rewards=rewards, harmonic=harmonic: maxpo.advantages(rewards, harmonic),
                      device, min_time, 2000)
        row: dict[str, object] = {
            "groups": groups, "B": b, "K": k, "dtype": str(dtype).replace("torch.", ""),
            "sort_s": t_sort, "maxpo_s": t_maxpo, "maxpo_over_sort": t_maxpo / t_sort,
            "mixture_terms": b - 1, "mixture_s": t_mix, "mixture_over_maxpo": t_mix / t_maxpo,
        }
        if b <= pairwise_max_b:
            t_pair = _time(lambda rewards=rewards, k=k: maxpo.advantages(rewards, k, "maxpo_pairwise"),
                           device, min_time, 20)
            row.update(pairwise_s=t_pair, pairwise_over_maxpo=t_pair / t_maxpo)
        rows.append(row)
        print(f"groups={groups:5d} B={b:5d} K={k:4d}  sort {t_sort * 1e3:9.3f} ms  maxpo {t_maxpo * 1e3:9.3f} ms"
              f"  ratio {t_maxpo / t_sort:6.2f}x  mixture {t_mix / t_maxpo:5.2f}x maxpo"
              + (f"  pairwise {row['pairwise_s'] * 1e3:10.1f} ms ({row['pairwise_over_maxpo']:.0f}x maxpo)"
                 if "pairwise_s" in row else ""), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--min-time", type=float, default=1.0, help="seconds of repetitions per measurement")
    p.add_argument("--pairwise-max-b", type=int, default=4096, help="largest B to time the O(B^2) form at")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--out", type=Path, default=None, help="write results as JSON here")
    p.add_argument("--note", default=None, help="a remark stored with the results (e.g. a busy machine)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda was asked for but CUDA is not available on this machine")
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    t0 = time.perf_counter()
    rows = run(device, SIZES, args.min_time, args.pairwise_max_b, dtype)
    result = {
        "benchmark": "maxpo.advantages(method='maxpo') vs torch.sort, maxpo_pairwise and the harmonic mixture",
        "machine": machine_description(device),
        "maxpo_version": maxpo.__version__,
        "commit": git_commit(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "wall_s": round(time.perf_counter() - t0, 2),
        "results": rows,
    }
    if args.note:
        result["note"] = args.note
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
