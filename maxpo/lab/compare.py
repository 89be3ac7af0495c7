"""Compare advantage estimators on the same warm start, prompts and seeds.

``compare`` checks every run's configuration and the output paths first, then
runs every (method, seed) pair as an ordinary lab run in
``work_dir/<method>-s<seed>`` (each resumable; ``resume=True`` also starts runs
that never started), and gathers their metrics into one JSON file, rewritten
after each finished run (``"complete": false`` until the last): held-out curves
per run, the step-0 evaluation (the warm-start baseline), final metrics with
mean, standard deviation, minimum and maximum across seeds, paired bootstrap
intervals for every difference between methods (:mod:`maxpo.lab.stats`), the
pass@k-versus-k curves, per-step gradient norms, clipping and advantage
statistics, the gradient variance inside the model (:mod:`maxpo.lab.gradvar`),
throughput (samples/s, tokens/s) and the share of step time spent computing
advantages, and the provenance (device, torch version, git commit and dirty
flag, command, wall time) of the runs, with the call that gathered them.
"""
from __future__ import annotations

import json
import shlex
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from maxpo.lab.checkpoint import CHECKPOINT_NAME, load_model_weights
from maxpo.lab.config import LabConfig
from maxpo.lab.metrics import read_metrics
from maxpo.lab.preflight import check_writable_dir
from maxpo.lab.provenance import provenance, utc_now
from maxpo.lab.stats import paired_bootstrap_ci, passk_per_puzzle
from maxpo.lab.train import Interrupted, resolve_device, train, validate

__all__ = ["compare", "summarize_runs", "write_result", "paired_differences", "passk_curves",
           "gradient_variance_at_checkpoints", "runs_provenance", "resume_compare_command"]

_TRAIN_CURVE_KEYS = ("reward", "pass_rate", "partial_mean", "entropy", "mean_length", "mixed_groups",
                     "grad_norm", "grad_clipped", "adv_abs_mean", "adv_rms")
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


def _without_counts(rec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rec.items() if k != "correct_counts"}


def _run_record(method: str, seed: int, run_dir: Path) -> dict[str, Any]:
    records = read_metrics(run_dir / "metrics.jsonl")
    evals = [r for r in records if r["kind"] == "eval"]
    trains = [r for r in records if r["kind"] == "train"]
    curves = [_without_counts(r) for r in records if r["kind"] == "curve"]
    timing = {k: sum(r[k] for r in trains) for k in _TIMING_KEYS}
    samples, tokens = sum(r["samples"] for r in trains), sum(r["tokens"] for r in trains)
    summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").is_file() else {}
    return {
        "method": method,
        "seed": seed,
        "git_commit": summary.get("provenance", {}).get("git_commit"),
        "provenance": {**summary.get("provenance", {}), "started": summary.get("started"),
                       "finished": summary.get("finished"), "wall_seconds": summary.get("wall_seconds_this_session")},
        "eval": [_without_counts(e) for e in evals],
        # per-step training curves, column-wise, 4 significant digits
        "train": {"step": [r["step"] for r in trains],
                  **{k: [float(f"{r.get(k, float('nan')):.4g}") for r in trains] for k in _TRAIN_CURVE_KEYS}},
        "final": _without_counts(evals[-1]),
        "final_correct_counts": evals[-1].get("correct_counts"),
        "baseline_correct_counts": evals[0].get("correct_counts") if evals[0]["step"] == 0 else None,
        "curves": curves,
        # each puzzle's correct answers at every curve point (step 0 first): paired intervals at every k
        "curve_correct_counts": [r.get("correct_counts") for r in records if r["kind"] == "curve"],
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


def _clean_for_json(x: Any) -> Any:
    if isinstance(x, float) and not np.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean_for_json(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean_for_json(v) for v in x]
    return x


def runs_provenance(runs: list[dict[str, Any]], gathering: dict[str, Any]) -> dict[str, Any]:
    """Where the *runs* were produced (their commits, machine, versions, times), with the gathering call inside.

    A comparison may be gathered by a later call (``--resume`` after every run
    finished), so the file's top level describes the runs; ``gathered`` is the
    call that wrote the file. Fields the runs disagree on list every value.
    """
    provs = [r.get("provenance") or {} for r in runs]

    def one(key: str) -> Any:
        values = list(dict.fromkeys(p.get(key) for p in provs if p.get(key) is not None))
        return values[0] if len(values) == 1 else (values or None)

    commits = sorted({p["git_commit"] for p in provs if p.get("git_commit")})
    dirty = [p.get("git_dirty") for p in provs]
    walls = [p.get("wall_seconds") for p in provs]
    return {
        "device": one("device"), "torch": one("torch"), "python": one("python"), "platform": one("platform"),
        "git_commit": commits[0] if len(commits) == 1 else None,
        "git_commits": commits,
        "git_dirty": None if not dirty or None in dirty else any(dirty),
        "command": gathering.get("command"),
        "started": min((p["started"] for p in provs if p.get("started")), default=None),
        "finished": max((p["finished"] for p in provs if p.get("finished")), default=None),
        # the runs' own sessions (a resumed run counts only its last session)
        "wall_seconds": sum(walls) if walls and None not in walls else None,
        "gathered": gathering,
    }


def paired_differences(
    runs: list[dict[str, Any]], methods: Sequence[str], ks: Sequence[int], n: int
) -> list[dict[str, Any]]:
    """Paired bootstrap intervals of final pass@k differences: every pair of methods,
    and every method against the warm start.

    Seeds are paired by value (the same prompts and random numbers), puzzles by
    position (the same held-out set); see :func:`maxpo.lab.stats.paired_bootstrap_ci`.
    """
    by = {(r["method"], r["seed"]): r for r in runs}
    seeds = sorted({r["seed"] for r in runs})
    if any((m, s) not in by or by[(m, s)]["final_correct_counts"] is None for m in methods for s in seeds):
        return []
    out = []
    for k in ks:
        table = {
            m: np.stack([passk_per_puzzle(by[(m, s)]["final_correct_counts"], n, k) for s in seeds]) for m in methods
        }
        base_counts = by[(methods[0], seeds[0])]["baseline_correct_counts"]
        if base_counts is not None:
            base = np.stack([passk_per_puzzle(base_counts, n, k)] * len(seeds))
            out += [{"metric": f"pass@{k}", "a": m, "b": "warm start", **paired_bootstrap_ci(table[m], base)}
                    for m in methods]
        for i, a in enumerate(methods):
            for b in methods[i + 1:]:
                out.append({"metric": f"pass@{k}", "a": a, "b": b, **paired_bootstrap_ci(table[a], table[b])})
    return out


def passk_curves(runs: list[dict[str, Any]], methods: Sequence[str]) -> dict[str, Any]:
    """Mean over seeds of the pass@k-versus-k curve at the last step, per method, and the warm start's (step 0)."""
    if not runs or not runs[0]["curves"]:
        return {}
    first = runs[0]["curves"][0]
    ks = sorted(int(key[5:]) for key in first if key.startswith("pass@"))
    out: dict[str, Any] = {"k": ks, "n_prompts": first["n_prompts"], "n_samples": first["n_samples"],
                           "warm start": [first[f"pass@{k}"] for k in ks]}
    for m in methods:
        finals = [r["curves"][-1] for r in runs if r["method"] == m and len(r["curves"]) > 1]
        if finals:
            out[m] = [statistics.fmean(c[f"pass@{k}"] for c in finals) for k in ks]
    return out


def gradient_variance_at_checkpoints(base: LabConfig, methods: Sequence[str], seed: int, work_dir: Path,
                                     show_progress: bool = False) -> dict[str, Any]:
    """:func:`maxpo.lab.gradvar.gradient_variance` at the warm start and at the final weights of each method's
    run with ``seed`` (those runs must be complete).

    The result is kept in ``work_dir/gradient_variance.json`` with what it depends on
    (the configuration, the methods, the seed) and reused when those match.
    """
    from maxpo.lab.gradvar import gradient_variance
    from maxpo.lab.warmstart import build_policy, warm_start

    cache = work_dir / "gradient_variance.json"
    key = {"config": base.to_dict(), "methods": list(methods), "seed": seed}
    if cache.is_file():
        stored = json.loads(cache.read_text())
        if stored.get("key") == json.loads(json.dumps(key)):
            return stored["result"]

    device = resolve_device(base.device)
    bf16 = base.bf16 if base.bf16 is not None else device.type == "cuda"
    ev = base.eval
    out: dict[str, Any] = {}
    model, tok, _ = warm_start(base, device, bf16, show=show_progress)
    out["warm start"] = gradient_variance(model, tok, base, methods, ev.gradvar_prompts, ev.gradvar_repeats,
                                           ev.seed, bf16)
    for m in methods:
        model, tok = build_policy(base, device)
        model.eval()
        load_model_weights(work_dir / f"{m}-s{seed}" / CHECKPOINT_NAME, model)
        out[f"{m} seed {seed}"] = gradient_variance(model, tok, base, methods, ev.gradvar_prompts, ev.gradvar_repeats,
                                                        ev.seed, bf16)
    cache.write_text(json.dumps(_clean_for_json({"key": key, "result": out})))
    return out


def resume_compare_command(argv: Sequence[str] | None) -> str:
    """The command that continues an interrupted comparison: the same one with ``--resume``."""
    if not argv:
        return "compare(..., resume=True) with the same arguments"
    args = list(argv)
    return shlex.join(args if "--resume" in args else [*args, "--resume"])


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
    if len(set(methods)) != len(methods) or len(set(seeds)) != len(seeds):
        raise ValueError(f"methods and seeds must not repeat, got {list(methods)} and {list(seeds)}")
    # everything checkable is checked before the first run starts
    configs = {m: LabConfig.from_dict({**base.to_dict(), "seed": seeds[0]}).with_rl(method=m) for m in methods}
    for m, cfg in configs.items():
        try:
            validate(cfg)
        except ValueError as err:
            raise ValueError(f"method {m!r}: {err}") from None
    work_dir = check_writable_dir(work_dir, "--work-dir")
    if out_json is not None:
        check_writable_dir(Path(out_json).parent, "--out (its directory)")
        if Path(out_json).is_dir():
            raise ValueError(f"--out {str(out_json)!r} is a directory; give a JSON file name")
    device = resolve_device(base.device)
    t0, started = time.perf_counter(), utc_now()
    runs: list[dict[str, Any]] = []
    warm = None
    main = True
    k = base.rl.k
    metrics = [f"pass@{x}" for x in base.eval.ks] + [f"max@{x}" for x in base.eval.ks] + ["entropy"]

    def gathered(complete: bool, gradvar: dict[str, Any] | None = None) -> dict[str, Any]:
        return _clean_for_json({
            "label": label or f"{device.type.upper()} results, preset {base.preset or 'custom'}",
            "complete": complete,
            "provenance": runs_provenance(runs, {**provenance(device, argv), "started": started,
                                                 "finished": utc_now(), "wall_seconds": time.perf_counter() - t0}),
            "config": base.to_dict(),
            "methods": list(methods),
            "seeds": list(seeds),
            "k": k,
            "warmstart": warm,
            "baseline": runs[0]["eval"][0] if runs and runs[0]["eval"][0]["step"] == 0 else None,
            "summary": summarize_runs(runs, metrics),
            "differences": paired_differences(runs, methods, sorted({1, k, max(base.eval.ks)}), base.eval.samples)
            if complete else [],
            "passk_curves": passk_curves(runs, methods),
            "gradient_variance": gradvar,
            "runs": runs,
        })

    where = "before the first run"
    try:
        for method in methods:
            for seed in seeds:
                cfg = LabConfig.from_dict({**base.to_dict(), "seed": seed}).with_rl(method=method)
                run_dir = work_dir / f"{method}-s{seed}"
                where = f"in run {run_dir}"
                started_before = (run_dir / "config.json").is_file()
                res = train(cfg, run_dir, resume=resume and started_before, show_progress=show_progress, argv=argv)
                warm = warm or res.summary["warmstart"]
                main = res.is_main
                runs.append(_run_record(method, seed, run_dir))
                if out_json is not None and main:
                    write_result(gathered(complete=False), out_json)
        gradvar = None
        if base.eval.gradvar_repeats > 0 and main:
            where = "in the gradient-variance pass after the runs"
            gradvar = gradient_variance_at_checkpoints(base, methods, seeds[0], work_dir, show_progress)
    except KeyboardInterrupt as err:
        state = err.state if isinstance(err, Interrupted) else "interrupted"
        kept = f"; the {len(runs)} finished runs are gathered in {out_json}" if runs and out_json is not None else ""
        raise Interrupted(f"{state} ({where}{kept})", resume_compare_command(argv)) from None
    result = gathered(complete=True, gradvar=gradvar)
    if out_json is not None and main:
        write_result(result, out_json)
    return result
