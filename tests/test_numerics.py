"""Overflow thresholds, the float32 experiment pipelines, timing helpers, benchmark loading."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

import maxpo
from maxpo.benchmarking import results as bench_results
from maxpo.benchmarking import timing
from maxpo.figures.settings import torch_threads
from maxpo.theory import precision as numerics


def test_first_overflow_is_exact() -> None:
    b = numerics.first_overflow(lambda n: n // 2, torch.float64)
    assert math.comb(b, b // 2) > sys.float_info.max >= math.comb(b - 1, (b - 1) // 2)
    b32 = numerics.first_overflow(lambda n: n // 2, torch.float32)
    assert math.comb(b32, b32 // 2) > torch.finfo(torch.float32).max >= math.comb(b32 - 1, (b32 - 1) // 2)
    k = numerics.first_overflow(lambda n: 8, torch.float64, start=8)
    assert math.comb(k, 8) > sys.float_info.max >= math.comb(k - 1, 8)


@pytest.mark.parametrize("b,k", [(10, 3), (40, 20), (200, 7)])
def test_weights_log_and_raw_agree_before_overflow(b: int, k: int) -> None:
    raw = numerics.binomial_weights(b, k, log_space=False)
    log = numerics.binomial_weights(b, k)
    exact = torch.tensor([math.comb(i - 1, k - 1) / math.comb(b, k) for i in range(1, b + 1)], dtype=torch.float64)
    assert torch.allclose(raw, exact, rtol=1e-12, atol=0)
    assert torch.allclose(log, exact, rtol=1e-11, atol=1e-300)


def test_raw_weights_fail_silently_past_overflow() -> None:
    b = numerics.first_overflow(lambda n: n // 2, torch.float64)
    assert numerics.binomial_weights(b, b // 2, log_space=False).sum() == 0
    assert abs(numerics.binomial_weights(b, b // 2).sum().item() - 1) < 1e-10


@pytest.mark.parametrize("shift", [True, False])
def test_closed_form_float64_matches_package(shift: bool) -> None:
    x = torch.rand(5, 33, dtype=torch.float64)
    for k in (1, 4, 32):
        a = numerics.closed_form_maxpo(x, k, torch.float64, shift=shift)
        # without the shift, K near B cancels large suffix sums: a few digits are lost even in float64
        assert numerics.relative_error(a, maxpo.advantages(x, k)) < (1e-12 if shift else 1e-9)
    a_raw = numerics.closed_form_maxpo(x, 4, torch.float64, log_space=False)
    assert numerics.relative_error(a_raw, maxpo.advantages(x, 4)) < 1e-12


def test_error_measures() -> None:
    a = torch.tensor([[1.0, -1.0], [2.0, -1.0]], dtype=torch.float64)
    assert numerics.centering_error(a) == pytest.approx(1 / 3)
    assert numerics.relative_error(a * (1 + 1e-3), a) == pytest.approx(1e-3)


def test_time_methods_rows() -> None:
    rows = timing.time_methods([(2, 8, 2)], ["sort", "maxpo"], min_time=0.0)
    assert [r["method"] for r in rows] == ["sort", "maxpo"]
    assert all(r["seconds"] > 0 for r in rows)
    machine = timing.machine_description()
    assert machine["torch"] == torch.__version__ and machine["device"] == "cpu" and machine["cpu_model"]


def test_time_call_statistic_and_bad_statistic() -> None:
    calls = []
    assert timing.time_call(lambda: calls.append(1), min_time=0.0, min_reps=5, max_reps=5, warmup=2,
                            statistic="median") >= 0
    assert len(calls) == 7  # two warm-up calls, then exactly five timed ones
    with pytest.raises(ValueError, match="statistic must be 'min' or 'median'"):
        timing.time_call(lambda: None, statistic="mean")  # type: ignore[arg-type]


def test_torch_threads_sets_and_restores_the_thread_count() -> None:
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(1):
        raise RuntimeError("restored even on error")
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before


def _write_run(folder: Path, name: str, device: str) -> None:
    machine = {"device": device, "torch": "2.x"}
    machine["gpu" if device.startswith("cuda") else "cpu_model"] = "Test chip"
    folder.joinpath(name).write_text(json.dumps({
        "benchmark": "test", "machine": machine, "commit": "abc123", "command": "python bench.py",
        "date": "2026-11-26T00:00:00+00:00", "wall_s": 1.5,
        "results": [{"groups": 4, "B": 16, "K": 4, "dtype": "float32", "sort_s": 1e-4, "maxpo_s": 3e-4,
                     "maxpo_over_sort": 3.0, "pairwise_s": 3e-3, "pairwise_over_maxpo": 10.0},
                    {"groups": 2, "B": 64, "K": 8, "dtype": "float32", "sort_s": 1e-4, "maxpo_s": 4e-4,
                     "maxpo_over_sort": 4.0}],
    }))


def test_load_results_and_traces(tmp_path: Path) -> None:
    assert bench_results.load_results(tmp_path / "missing") == []
    _write_run(tmp_path, "cpu.json", "cpu")
    _write_run(tmp_path, "h100.json", "cuda")
    runs = bench_results.load_results(tmp_path)
    assert [r.is_gpu for r in runs] == [False, True]
    assert runs[1].hardware == "Test chip" and "abc123" in runs[1].provenance()
    traces = bench_results.ratio_traces(runs, "pairwise_over_maxpo")
    assert [list(t.x) for t in traces] == [[16], [16]]
    assert len(bench_results.ratio_traces([], "maxpo_over_sort")) == 1


def test_load_results_names_the_bad_field(tmp_path: Path) -> None:
    tmp_path.joinpath("bad.json").write_text(json.dumps({"machine": {"device": "cpu"}, "results": []}))
    with pytest.raises(ValueError, match="bad.json"):
        bench_results.load_results(tmp_path)
    tmp_path.joinpath("bad.json").write_text(json.dumps({
        "machine": {"device": "cpu"}, "commit": "x", "command": "x", "date": "x",
        "results": [{"B": 4}]}))
    with pytest.raises(ValueError, match=r"results\[0\]"):
        bench_results.load_results(tmp_path)
