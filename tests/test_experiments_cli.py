"""The command line of the experiments: --help, and tiny runs that write JSON with provenance."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from maxpo.experiments.__main__ import main
from maxpo.experiments.bandit_study import load

ROOT = Path(__file__).resolve().parents[1]
PROVENANCE = {"command", "commit", "dirty", "torch", "python", "platform", "cpu_count", "torch_threads",
              "wall_seconds", "date_utc", "maxpo_version"}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "maxpo.experiments", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_help_from_the_command_line():
    top = run_cli("--help")
    assert top.returncode == 0 and "bandit" in top.stdout and "maze" in top.stdout


@pytest.mark.parametrize("study", ["bandit", "maze"])
def test_subcommand_help(study, capsys):
    with pytest.raises(SystemExit) as exc:
        main([study, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "--out" in text and "--quick" in text and "--threads" in text


def test_missing_out_is_an_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bandit"])
    assert exc.value.code != 0 and "--out" in capsys.readouterr().err


def test_tiny_bandit_run(tmp_path):
    out = tmp_path / "b" / "bandit.json"
    assert main(["bandit", "--quick", "--draws", "400", "--problems", "bernoulli", "--threads", "1",
                 "--no-progress", "--out", str(out)]) == 0
    data = load(str(out))
    assert data["study"] == "bandit" and PROVENANCE <= set(data["provenance"])
    assert data["provenance"]["command"].startswith("python -m maxpo.experiments bandit")
    assert data["config"]["draws"] == 400 and data["config"]["problems"] == ["bernoulli"]
    rows = data["rows"]
    assert rows and {r["problem"] for r in rows} == {"bernoulli"}
    assert any(r["method"] == "chen_passk" for r in rows)  # binary problem: binary-only methods run
    json.loads(out.read_text())  # strict JSON (no NaN)
    assert "NaN" not in out.read_text()


def test_tiny_maze_run(tmp_path):
    out = tmp_path / "maze.json"
    res = run_cli("maze", "--quick", "--seeds", "1", "--steps", "20", "--experiments", "comparison",
                  "--no-progress", "--threads", "1", "--out", str(out))
    assert res.returncode == 0, res.stderr
    data = json.loads(out.read_text())
    assert data["study"] == "maze" and PROVENANCE <= set(data["provenance"])
    exp = data["experiments"]["comparison"]
    assert exp["eval_steps"][-1] == 20 and set(exp["summary"]) == {"maxpo", "pkpo_loo1", "pkpo_s", "grpo"}
    assert list(data["experiments"]) == ["comparison"]


def test_figures_build_from_quick_results():
    import plotly.graph_objects as go
    import torch

    from maxpo.experiments import bandit_study as bs
    from maxpo.experiments import bandits, plots
    from maxpo.experiments import maze_study as ms
    from maxpo.experiments.maze import TrainConfig, maze

    b = bs.run_bandit_study(bs.quick_config(settings=((8, 4), (16, 4)), b_scan=(8, 16), draws=400, blocks=10),
                            progress=False)
    m = ms.run_maze_study(ms.quick_config(methods=("maxpo", "grpo"), k_sweep=(1, 4), seeds=2,
                                          train=TrainConfig(steps=20, eval_every=10)), progress=False)
    mz = maze("two_goals")
    figs = [
        plots.gradient_alignment_figure({"heavy": bandits.problem("heavy")}, [1, 2, 4]),
        plots.bias_figure(b, 16, 4), plots.variance_vs_b_figure(b, 4), plots.variance_vs_k_figure(b, bs=(16,)),
        plots.variance_ratio_figure(b), plots.snr_figure(b, 16, 4), plots.alignment_figure(b, 16, 4),
        plots.loo1_offset_figure(b),
        plots.learning_curves_figure(m["experiments"]["comparison"]), plots.k_sweep_figure(m["experiments"]["k_sweep"]),
        plots.final_vs_k_figure(m["experiments"]["k_sweep"]),
        plots.occupancy_figure(mz, {"a": mz.initial_logits(1)[0], "b": torch.randn(mz.n_cells, 4)}),
    ]
    for fig in figs:
        assert isinstance(fig, go.Figure) and fig.data
        json.loads(fig.to_json())
        for menu in list(fig.layout.updatemenus) + list(fig.layout.sliders):
            steps = menu.buttons if hasattr(menu, "buttons") and menu.buttons else menu.steps
            for step in steps:  # every control step restyles every trace
                assert len(step.args[0]["y"]) == len(fig.data)
    assert len(figs[1].layout.updatemenus[0].buttons) == 2  # one entry per bandit of the study
