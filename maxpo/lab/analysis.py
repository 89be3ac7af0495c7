"""Analyses of a comparison's JSON (:func:`maxpo.lab.compare.compare`) that the lab chapter reports.

* :func:`passk_differences` -- paired bootstrap intervals of final pass@k
  differences at *every* k from 1 to the evaluation's ``n`` answers per puzzle
  (the comparison file keeps each puzzle's count of correct answers at the final
  and at the step-0 evaluation), method against method or against the warm start;
* :func:`power_analysis` -- how many seeds and evaluation puzzles would resolve a
  difference, from the seed and puzzle variances that the comparison itself shows
  (:func:`maxpo.lab.stats.variance_components`).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from maxpo.lab.stats import (
    paired_bootstrap_ci,
    passk_per_puzzle,
    power,
    seeds_needed,
    standard_error,
    variance_components,
)

__all__ = ["passk_table", "has_curve_counts", "passk_differences", "resolved_ranges", "describe_resolved",
           "power_analysis", "headline"]

WARM = "warm start"


def passk_table(res: dict[str, Any], method: str, k: int, curve: bool = False) -> np.ndarray:
    """``(seeds, puzzles)`` final pass@k per puzzle of ``method`` (``"warm start"``: the step-0 evaluation, one row
    per seed, so that it pairs with a method's table).

    ``curve=True`` uses the pass@k-curve evaluation (more answers per puzzle, k up to
    its ``n``) where the comparison kept its per-puzzle counts (``curve_correct_counts``).
    """
    seeds = list(res["seeds"])
    ev = res["config"]["eval"]
    n = ev["curve_samples"] if curve else ev["samples"]
    by = {(r["method"], r["seed"]): r for r in res["runs"]}
    if curve:
        source = [by[(res["methods"][0] if method == WARM else method, s)].get("curve_correct_counts") or []
                  for s in seeds]
        rows = [c[0] if method == WARM else c[-1] for c in source if len(c) >= 2] if all(source) else []
        if len(rows) != len(seeds):
            rows = [None]
    elif method == WARM:
        rows = [by[(res["methods"][0], s)]["baseline_correct_counts"] for s in seeds]
    else:
        rows = [by[(method, s)]["final_correct_counts"] for s in seeds]
    if any(r is None for r in rows):
        raise ValueError(f"the comparison keeps no per-puzzle counts for {method!r}" + (" (curve)" if curve else ""))
    return np.stack([passk_per_puzzle(r, n, k) for r in rows])


def has_curve_counts(res: dict[str, Any]) -> bool:
    """Whether every run kept its per-puzzle counts of the pass@k-curve evaluation (step 0 and the last)."""
    return all(len(r.get("curve_correct_counts") or []) >= 2 and None not in r["curve_correct_counts"]
               for r in res["runs"])


def passk_differences(res: dict[str, Any], a: str, b: str, ks: Sequence[int] | None = None,
                      n_boot: int = 4000, curve: bool = False) -> list[dict[str, Any]]:
    """Paired bootstrap interval of final pass@k of ``a`` minus ``b`` for every ``k`` (default 1..n).

    ``curve=True``: from the pass@k-curve evaluation (see :func:`passk_table`).
    """
    ev = res["config"]["eval"]
    n = ev["curve_samples"] if curve else ev["samples"]
    out = []
    for k in ks or range(1, n + 1):
        out.append({"k": k, "a": a, "b": b, **paired_bootstrap_ci(passk_table(res, a, k, curve),
                                                                  passk_table(res, b, k, curve), n_boot=n_boot)})
    return out


def resolved_ranges(rows: Sequence[dict[str, Any]]) -> list[tuple[int, int, int]]:
    """Maximal runs of consecutive rows (ordered by k) whose interval excludes 0 on the same side.

    Returns ``(k_first, k_last, sign)`` per run, ``sign`` +1 when the interval lies above 0
    and -1 below; rows whose interval contains 0 end a run.
    """
    out: list[tuple[int, int, int]] = []
    for d in sorted(rows, key=lambda d: d["k"]):
        sign = _side(d["lo"], d["hi"], 0.0)
        if sign and out and out[-1][2] == sign and out[-1][1] == d["k"] - 1:
            out[-1] = (out[-1][0], d["k"], sign)
        elif sign:
            out.append((d["k"], d["k"], sign))
    return out


def describe_resolved(rows: Sequence[dict[str, Any]]) -> str:
    """Words for :func:`resolved_ranges`: e.g. ``"k = 1 (below 0) and k = 4 to 64 (above 0)"``, or ``"no k"``."""
    parts = [(f"k = {a}" if a == b else f"k = {a} to {b}") + (" (above 0)" if sg > 0 else " (below 0)")
             for a, b, sg in resolved_ranges(rows)]
    if not parts:
        return "no k"
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def power_analysis(res: dict[str, Any], a: str, b: str, k: int, effects: Sequence[float],
                   seeds_grid: Sequence[int] = (5, 10, 20, 40), puzzles_grid: Sequence[int] = (128, 256, 512, 1024),
                   target: float = 0.8) -> dict[str, Any]:
    """Variance components of the final pass@k difference ``a - b``, and the power of larger comparisons.

    Returns the components, the observed difference and standard error, a power
    table over ``seeds_grid`` x ``puzzles_grid`` for each of ``effects``, and the
    seeds needed for power ``target`` at each puzzle count (``None``: out of reach).
    """
    d = passk_table(res, a, k) - passk_table(res, b, k)
    comp = variance_components(d)
    s, p = d.shape
    return {
        "a": a, "b": b, "k": k, "components": comp, "observed": comp["mean"],
        "standard_error": standard_error(comp, s, p),
        "table": [{"effect": e, "seeds": ns, "puzzles": np_, "power": power(comp, e, ns, np_)}
                  for e in effects for ns in seeds_grid for np_ in puzzles_grid],
        "seeds_needed": [{"effect": e, "puzzles": np_, "seeds": seeds_needed(comp, e, np_, target)}
                         for e in effects for np_ in puzzles_grid],
        "target_power": target,
    }


def _side(lo: float, hi: float, at: float) -> int:
    return 1 if lo > at else -1 if hi < at else 0


def headline(res: dict[str, Any], study: dict[str, Any]) -> dict[str, Any]:
    """The lab's findings in a few numbers and words, for the boxes of the preface and the verdict.

    From a comparison file (``res``) and a gradient-study file (``study``, written by
    ``benchmarks/lab_gradient_study.py``): Var(MaxPO)/Var(loo-1) at the warm start per
    prompt set with its interval (the inverse of the study's Var(0)/Var(1), whose
    bootstrap quantiles map monotonically) and a word for which side of 1 they lie
    on; the range of lambda* over all measurements; the range of the pooled c*/delta;
    the range of the wrong-to-correct ratio of mean score norms; MaxPO - GRPO in
    final pass@K with its interval and a word; and MaxPO - GRPO at every k of the
    pass@k curve (``tail``: up to the curve's answers per puzzle where the comparison
    kept those counts, else up to the final evaluation's), with the k where it
    resolves (``tail_resolved``, words from :func:`describe_resolved`) and the row of
    largest difference (``tail_best``).
    """
    k = res["k"]
    warm = [r for r in study["results"] if r["checkpoint"] == "warm"]
    if not warm:
        raise ValueError("the gradient study has no warm-start measurement")
    ratios = []
    for r in warm:
        v = r["family"]["var0_over_var1"]
        ratios.append({"value": 1 / v["value"], "lo": 1 / v["hi"], "hi": 1 / v["lo"]})
    sides = {_side(v["lo"], v["hi"], 1.0) for v in ratios}
    lam = [r["family"]["lambda_star"]["value"] for r in study["results"]]
    shift = [r["shift"]["c_star_over_delta_pooled"]["value"] for r in study["results"]
             if "c_star_over_delta_pooled" in r["shift"]]
    norms = [r["answers"]["norm_wrong"] / r["answers"]["norm_correct"] for r in study["results"]]
    d = passk_differences(res, "maxpo", "grpo", ks=[k])[0]
    curve = has_curve_counts(res)
    tail = passk_differences(res, "maxpo", "grpo", curve=curve)
    return {
        "var_warm": ratios,
        "var_word": {frozenset({1}): "higher than", frozenset({-1}): "lower than"}.get(frozenset(sides),
                                                                                         "not distinguishable from"),
        "lambda_min": min(lam), "lambda_max": max(lam), "measurements": len(lam),
        "checkpoints": len({r["checkpoint"] for r in study["results"]}),
        "prompt_sets": len({r["prompt_seed"] for r in study["results"]}),
        "warm_prompt_sets": len(warm),
        "shift_min": min(shift) if shift else None, "shift_max": max(shift) if shift else None,
        "norm_ratio_min": min(norms), "norm_ratio_max": max(norms),
        "k": k, "passk": d,
        "passk_word": {1: "MaxPO ahead", -1: "GRPO ahead", 0: "not resolved"}[_side(d["lo"], d["hi"], 0.0)],
        "seeds": len(res["seeds"]),
        "tail": tail, "tail_kmax": tail[-1]["k"], "tail_from_curve": curve,
        "tail_resolved": describe_resolved(tail), "tail_best": max(tail, key=lambda r: r["diff"]),
    }
