"""The committed lab results: provenance, design of the comparison, statistics, and the figures built from them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("plotly")

from maxpo.lab import plots  # noqa: E402
from maxpo.lab.stats import passk_per_puzzle  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "book" / "data" / "lab"
FILES = sorted(DATA.glob("*_compare.json"))


def test_results_are_committed() -> None:
    """At least the CPU comparison is committed (the parametrized test below must not run over an empty folder)."""
    assert (DATA / "cpu_compare.json").is_file()
    assert DATA / "cpu_compare.json" in FILES


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_comparison_file(path: Path) -> None:
    res = json.loads(path.read_text())
    prov = res["provenance"]
    for key in ("device", "torch", "git_commit", "git_dirty", "command", "wall_seconds", "started", "finished"):
        assert key in prov, key
    kind = "GPU" if path.name.startswith("gpu") else "CPU"
    assert res["label"].startswith(kind) and (kind == "GPU") == ("CUDA" in prov["device"])
    assert res["complete"] is True
    # the runs' commit is at the top level (not only the call that gathered them) and matches every run's
    commits = sorted({r["git_commit"] for r in res["runs"] if r.get("git_commit")})
    assert prov["git_commits"] == commits and prov["git_commit"] == (commits[0] if len(commits) == 1 else None)
    assert "gathered" in prov and "command" in prov["gathered"]
    if kind == "CPU":
        assert len(res["seeds"]) >= 5  # at least 5 seeds
        assert prov["git_dirty"] is False and prov["gathered"]["git_dirty"] is False  # committed code only
    assert {"grpo", "pkpo_loo1", "maxpo"} <= set(res["methods"]) and len(res["seeds"]) >= 2
    for m in res["methods"]:
        runs = [r for r in res["runs"] if r["method"] == m]
        assert sorted(r["seed"] for r in runs) == sorted(res["seeds"])  # same seeds for every method
        assert all(r["final"]["step"] == res["config"]["rl"]["steps"] for r in runs)
        assert all(len(r["train"]["grad_norm"]) == res["config"]["rl"]["steps"] for r in runs)  # logged every step
    steps = {tuple(e["step"] for e in r["eval"]) for r in res["runs"]}
    assert len(steps) == 1 and next(iter(steps))[0] == 0  # same steps, starting with the warm-start baseline
    assert res["baseline"]["step"] == 0
    fig = plots.seed_band_figure(res, "pass@1")
    assert len(fig.data) == 2 * len(res["methods"])
    table = plots.summary_html(res, ["pass@1", f"pass@{res['k']}"])
    assert table.count("<tr>") == len(res["methods"]) + 1


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_statistics_agree_with_the_per_puzzle_counts(path: Path) -> None:
    """The reported final pass@k is the mean of the per-puzzle unbiased estimates, and every difference's
    point estimate is the paired mean difference; each interval contains its point estimate."""
    res = json.loads(path.read_text())
    n = res["config"]["eval"]["samples"]
    for r in res["runs"]:
        for k in res["config"]["eval"]["ks"]:
            assert abs(passk_per_puzzle(r["final_correct_counts"], n, k).mean() - r["final"][f"pass@{k}"]) < 1e-5
    assert res["differences"]
    for d in res["differences"]:
        k = int(d["metric"].split("@")[1])
        assert d["lo"] <= d["diff"] <= d["hi"]
        if d["b"] == "warm start":
            continue
        runs = {(r["method"], r["seed"]): r for r in res["runs"]}
        means = [passk_per_puzzle(runs[(d["a"], s)]["final_correct_counts"], n, k).mean()
                 - passk_per_puzzle(runs[(d["b"], s)]["final_correct_counts"], n, k).mean() for s in res["seeds"]]
        assert abs(sum(means) / len(means) - d["diff"]) < 1e-5
    curves = res["passk_curves"]
    assert curves["k"][-1] >= 64 and curves["n_samples"] >= curves["k"][-1]
    for m in res["methods"]:
        assert all(a <= b + 1e-9 for a, b in zip(curves[m], curves[m][1:]))  # pass@k grows with k
    gv = res["gradient_variance"]
    assert "warm start" in gv and all(set(g["methods"]) == set(res["methods"]) for g in gv.values())


def test_resolved_ranges_group_consecutive_k_on_one_side() -> None:
    """Runs of k whose interval excludes 0: a contained 0, a gap in k or a change of side ends a run."""
    from maxpo.lab.analysis import describe_resolved, resolved_ranges

    def row(k: int, lo: float, hi: float) -> dict:
        return {"k": k, "diff": (lo + hi) / 2, "lo": lo, "hi": hi}

    rows = [row(1, -0.1, 0.1), row(2, 0.01, 0.2), row(3, 0.02, 0.3), row(4, -0.3, -0.01),
            row(5, -0.2, -0.1), row(6, -0.1, 0.0), row(8, 0.1, 0.2), row(9, 0.1, 0.3)]
    assert resolved_ranges(list(reversed(rows))) == [(2, 3, 1), (4, 5, -1), (8, 9, 1)]
    assert describe_resolved(rows) == "k = 2 to 3 (above 0), k = 4 to 5 (below 0) and k = 8 to 9 (above 0)"
    assert describe_resolved([row(7, 0.0, 0.1)]) == "no k"  # touching 0 is not excluding it
    assert describe_resolved([row(7, 0.01, 0.1)]) == "k = 7 (above 0)"
    assert describe_resolved(rows[:5]) == "k = 2 to 3 (above 0) and k = 4 to 5 (below 0)"


def test_cpu_comparison_keeps_curve_counts_and_its_every_k_intervals_match_a_hand_computation() -> None:
    """The committed CPU comparison keeps each puzzle's count of correct answers in its curve evaluation, so the
    chapter's paired intervals reach k = 64; the point estimate at every k is recomputed here with math.comb
    (pass@k of one puzzle = 1 - C(n - c, k) / C(n, k)), independently of maxpo.lab.stats."""
    from math import comb

    from maxpo.lab.analysis import has_curve_counts, passk_differences

    res = json.loads((DATA / "cpu_compare.json").read_text())
    assert res["provenance"]["git_dirty"] is False
    assert has_curve_counts(res)
    n = res["config"]["eval"]["curve_samples"]
    runs = {(r["method"], r["seed"]): r for r in res["runs"]}

    def mean_passk(counts: list[int], k: int) -> float:
        return sum(1 - comb(n - c, k) / comb(n, k) for c in counts) / len(counts)

    rows = passk_differences(res, "maxpo", "grpo", curve=True, n_boot=200)
    assert [d["k"] for d in rows] == list(range(1, n + 1))
    for d in rows[:: 9] + [rows[-1]]:
        by_seed = [mean_passk(runs[("maxpo", s)]["curve_correct_counts"][-1], d["k"])
                   - mean_passk(runs[("grpo", s)]["curve_correct_counts"][-1], d["k"]) for s in res["seeds"]]
        assert abs(sum(by_seed) / len(by_seed) - d["diff"]) < 1e-9
        assert d["lo"] <= d["diff"] <= d["hi"]
    for m in res["methods"]:  # the curve means are the per-puzzle means of the kept counts
        for s in res["seeds"]:
            last = runs[(m, s)]["curves"][-1]
            assert abs(mean_passk(runs[(m, s)]["curve_correct_counts"][-1], 64) - last["pass@64"]) < 1e-5
