"""The committed lab results: provenance, design of the comparison, and the figures built from them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("plotly")

from maxpo.lab import plots  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "book" / "data" / "lab"
FILES = sorted(DATA.glob("*_compare.json"))


def test_results_are_committed() -> None:
    assert (DATA / "cpu_compare.json").is_file() or (DATA / "gpu_compare.json").is_file()


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_comparison_file(path: Path) -> None:
    res = json.loads(path.read_text())
    prov = res["provenance"]
    for key in ("device", "torch", "git_commit", "git_dirty", "command", "wall_seconds", "started", "finished"):
        assert key in prov, key
    kind = "GPU" if path.name.startswith("gpu") else "CPU"
    assert res["label"].startswith(kind) and (kind == "GPU") == ("CUDA" in prov["device"])
    assert {"grpo", "pkpo_loo1", "maxpo"} <= set(res["methods"]) and len(res["seeds"]) >= 3
    for m in res["methods"]:
        runs = [r for r in res["runs"] if r["method"] == m]
        assert sorted(r["seed"] for r in runs) == sorted(res["seeds"])  # same seeds for every method
        assert all(r["final"]["step"] == res["config"]["rl"]["steps"] for r in runs)
    steps = {tuple(e["step"] for e in r["eval"]) for r in res["runs"]}
    assert len(steps) == 1  # evaluated at the same steps
    fig = plots.seed_band_figure(res, "pass@1")
    assert len(fig.data) == 2 * len(res["methods"])
    table = plots.summary_html(res, ["pass@1", f"pass@{res['k']}"])
    assert table.count("<tr>") == len(res["methods"]) + 1
