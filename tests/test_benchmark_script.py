"""The benchmark script runs and records its machine (no timing is asserted)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_advantages", ROOT / "benchmarks" / "bench_advantages.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_benchmark_writes_results_with_provenance(tmp_path, monkeypatch):
    bench = load_bench()
    monkeypatch.setattr(bench, "SIZES", [(8, 16, 4), (2, 64, 8)])
    out = tmp_path / "r.json"
    assert bench.main(["--min-time", "0.01", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["machine"]["torch"] and data["machine"]["device"] == "cpu" and data["commit"]
    assert [(r["groups"], r["B"], r["K"]) for r in data["results"]] == [(8, 16, 4), (2, 64, 8)]
    assert all(r["maxpo_over_sort"] > 0 and r["pairwise_over_maxpo"] > 0 and r["mixture_over_maxpo"] > 0
               for r in data["results"])
    assert [r["mixture_terms"] for r in data["results"]] == [15, 63]


def test_committed_results_have_provenance():
    paths = sorted((ROOT / "benchmarks" / "results").glob("*.json"))
    # the CPU run the computing chapter plots
    assert (ROOT / "benchmarks" / "results" / "cpu_epyc_1thread.json") in paths
    for path in paths:
        data = json.loads(path.read_text())
        for key in ("machine", "commit", "command", "date", "results"):
            assert key in data, f"{path.name} lacks {key}"
