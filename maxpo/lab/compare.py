"""Compare advantage estimators on the same warm start, prompts and seeds.

``compare`` runs every (method, seed) pair as an ordinary lab run in
``work_dir/<method>-s<seed>`` (each resumable), then gathers their metrics into
one JSON file: held-out curves per run, final metrics with mean, standard
deviation, minimum and maximum across seeds, throughput (samples/s, tokens/s)
and the share of step time spent computing advantages, and the provenance
(device, torch version, git commit and dirty flag, command, wall time).
"""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any, Sequence

from maxpo.lab.config import LabConfig
from maxpo.lab.metrics import read_metrics
from maxpo.lab.provenance import provenance, utc_now
from maxpo.lab.train import resolve_device, train

__all__ = ["compare", "summarize_runs", "write_result"]

_TRAIN_CURVE_KEYS = ("reward", "pass_rate", "partial_mean", "entropy", "mean_length", "mixed_groups")
_TIMING_KEYS = ("t_step", "t_sample", "t_reward", "t_adv", "t_update")


def _rounded(x: Any, digits: int = 6) -> Any:
    """``x`` with every float rounded to ``digits`` significant digits (keeps the JSON small)."""
    if isinstance(x, float):
        return float(f"{x:.{digits}g}")
    if isinstance(x, dict):
        return {k: _rounded(v, digits) for k, v in x.items()}
    if isinstance(x, list):
        return [_rounded(v, digits) for v in x]
    return x


def write_result(result: dict[str, Any], path: str | Path) -> Path:
    """Write a comparison result as compact JSON, floats to 6 significant digits (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(_rounded(result), separators=(",", ":")) + "\n")
    tmp.replace(path)
    return path


def _spread(values: Sequence[float]) -> dict[str, Any]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
        "values": list(values),
    }


def _run_record(method: str, seed: int, run_dir: Path) -> dict[str, Any]:
    records = read_metrics(run_dir / "metrics.jsonl")
    evals = [r for r in records if r["kind"] == "eval"]
    trains = [r for r in records if r["kind"] == "train"]
    timing = {k: sum(r[k] for r in trains) for k in _TIMING_KEYS}
    samples, tokens = sum(r["samples"] for r in trains), sum(r["tokens"] for r in trains)
    return {
        "method": method,
        "seed": seed,
        "eval": evals,
        # per-step training curves, column-wise, 4 significant digits
        "train": {"step": [r["step"] for r in trains],
                  **{k: [float(f"{r[k]:.4g}") for r in trains] for k in _TRAIN_CURVE_KEYS}},
        "final": evals[-1],
        "timing": timing,
        "eval_seconds": sum(r["t_eval"] for r in evals),
        "samples": samples,
        "tokens": tokens,
    }


def summarize_runs(runs: list[dict[str, Any]], metrics: Sequence[str]) -> dict[str, Any]:
    """Per method: spread across seeds of each final metric, throughput and advantage share."""
    out: dict[str, Any] = {}
    for method in dict.fromkeys(r["method"] for r in runs):
        mine = [r for r in runs if r["method"] == method]
        t = {k: sum(r["timing"][k] for r in mine) for k in _TIMING_KEYS}
        out[method] = {
            "seeds": [r["seed"] for r in mine],
            "final": {m: _spread([r["final"][m] for r in mine]) for m in metrics if m in mine[0]["final"]},
            "samples_per_s": sum(r["samples"] for r in mine) / t["t_step"],
            "tokens_per_s": sum(r["tokens"] for r in mine) / t["t_step"],
            "step_seconds": t["t_step"] / sum(len(r["train"]["step"]) for r in mine),
            "share": {k[2:]: t[k] / t["t_step"] for k in _TIMING_KEYS if k != "t_step"},
        }
    return out


def compare(
    base: LabConfig,
    methods: Sequence[str],
    seeds: Sequence[int],
    work_dir: str | Path,
    out_json: str | Path | None,
    resume: bool = False,
    show_progress: bool = True,
    argv: list[str] | None = None,
    label: str = "",
) -> dict[str, Any]:
    """Run ``methods`` x ``seeds`` from ``base`` and write the gathered results to ``out_json``.

    Every run uses the same warm start (same task, model and warm-start config)
    and, for a given seed, the same prompts and random numbers. ``resume=True``
    skips complete runs and continues interrupted ones.
    """
    if not methods or not seeds:
        raise ValueError("compare needs at least one method and one seed")
    work_dir = Path(work_dir)
    t0, started = time.perf_counter(), utc_now()
    runs, warm = [], None
    main = True
    for method in methods:
        for seed in seeds:
            cfg = LabConfig.from_dict({**base.to_dict(), "seed": seed}).with_rl(method=method)
            run_dir = work_dir / f"{method}-s{seed}"
            res = train(cfg, run_dir, resume=resume, show_progress=show_progress, argv=argv)
            warm = warm or res.summary["warmstart"]
            main = res.is_main
            runs.append(_run_record(method, seed, run_dir))
    k = base.rl.k
    metrics = [f"pass@{x}" for x in base.eval.ks] + [f"max@{x}" for x in base.eval.ks] + ["entropy"]
    device = resolve_device(base.device)
    result = {
        "label": label or f"{device.type.upper()} results, preset {base.preset or 'custom'}",
        "provenance": {**provenance(device, argv), "started": started, "finished": utc_now(),
                       "wall_seconds": time.perf_counter() - t0},
        "config": base.to_dict(),
        "methods": list(methods),
        "seeds": list(seeds),
        "k": k,
        "warmstart": warm,
        "summary": summarize_runs(runs, metrics),
        "runs": runs,
    }
    if out_json is not None and main:
        write_result(result, out_json)
    return result
