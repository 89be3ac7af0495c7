"""The lab's RL loop: learning, exact resume, every estimator, errors, the CLI."""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import maxpo
from maxpo.lab.cli import main
from maxpo.lab.config import EvalConfig, LabConfig, ModelSpec, RLConfig, WarmStartConfig, preset
from maxpo.lab.metrics import read_metrics
from maxpo.lab.task import TaskConfig
from maxpo.lab.train import DeviceUnavailable, resolve_device, train, validate

torch.set_num_threads(1)

_TIMING = {"t_step", "t_sample", "t_reward", "t_adv", "t_update", "t_eval", "samples_per_s", "tokens_per_s"}


@pytest.fixture(autouse=True, scope="module")
def _cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A private warm-start cache for this module's runs."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MAXPO_LAB_CACHE", str(tmp_path_factory.mktemp("lab-cache")))
        yield


EASY = TaskConfig(n_numbers=2, max_number=9, max_target=81)
MODEL = ModelSpec(n_layer=2, n_head=4, d_model=64)
WARM = WarmStartConfig(steps=80, batch_size=128, lr=3e-3)  # held-out pass@1 about 0.1: rewards are mixed


def tiny(steps: int = 4, **rl: Any) -> LabConfig:
    """A run of a few seconds on two-number puzzles: 4 prompts x 4 answers per step (shared warm start)."""
    return LabConfig(
        task=EASY,
        model=MODEL,
        warmstart=WARM,
        rl=RLConfig(**{"k": 2, "prompts_per_step": 4, "samples_per_prompt": 4, "steps": steps, "lr": 1e-3,
                       "max_new_tokens": 8, **rl}),
        eval=EvalConfig(prompts=16, samples=4, every=2, ks=(1, 2, 4)),
        device="cpu",
        threads=1,
        checkpoint_every=2,
    )


def _no_timing(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in _TIMING} for r in records]


def _state(run_dir: Path) -> dict[str, Any]:
    return torch.load(run_dir / "checkpoint.pt", weights_only=True)


def test_smoke_run_improves_the_reward_on_an_easy_setting(tmp_path: Path) -> None:
    """Two-number puzzles, a briefly warm-started model: 60 MaxPO steps raise the reward clearly."""
    cfg = LabConfig(
        task=EASY,
        model=MODEL,
        warmstart=WARM,
        rl=RLConfig(method="maxpo", k=2, prompts_per_step=16, samples_per_prompt=8, steps=60, lr=1e-3,
                    max_new_tokens=8),
        eval=EvalConfig(prompts=24, samples=16, every=60, ks=(1, 2)),
        device="cpu",
        threads=1,
        checkpoint_every=60,
    )
    res = train(cfg, tmp_path / "run", show_progress=False)
    rewards = [r["reward"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl", "train")]
    first, last = sum(rewards[:10]) / 10, sum(rewards[-10:]) / 10
    assert last > first + 0.1, (first, last)
    evals = read_metrics(tmp_path / "run" / "metrics.jsonl", "eval")
    assert [e["step"] for e in evals] == [0, 60]
    assert evals[-1]["pass@1"] > evals[0]["pass@1"]
    assert res.summary["final_eval"] == evals[-1]
    assert res.summary["warmstart"]["heldout"]["pass@1"] > 0


def test_cached_warm_start_is_evaluated_with_the_runs_own_settings() -> None:
    from maxpo.lab.warmstart import warm_start

    first = tiny()
    other = dataclasses.replace(first, eval=EvalConfig(prompts=12, samples=8, every=2, ks=(1, 8)))
    _, _, made = warm_start(first, torch.device("cpu"), bf16=False, show=False)
    _, _, again = warm_start(first, torch.device("cpu"), bf16=False, show=False)
    _, _, reused = warm_start(other, torch.device("cpu"), bf16=False, show=False)
    assert again["cached"] and again["heldout"] == made["heldout"]  # same settings: the stored numbers
    assert reused["cached"] and "pass@8" in reused["heldout"] and "pass@8" not in made["heldout"]
    assert reused["heldout_settings"]["samples"] == 8


def test_resume_continues_exactly(tmp_path: Path) -> None:
    full = tmp_path / "full"
    train(tiny(steps=5), full, show_progress=False)
    part = tmp_path / "part"
    train(tiny(steps=3), part, show_progress=False)
    # a crash after step 3's checkpoint: a record of a step that never checkpointed
    with (part / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({"kind": "train", "step": 4, "reward": -1.0}) + "\n")
    res = train(tiny(steps=5), part, resume=True, show_progress=False)
    assert res.summary["resumed_from"] == 3
    a, b = _state(full), _state(part)
    assert a["step"] == b["step"] == 5
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    for (_, x), (_, y) in zip(sorted(a["optimizer"]["state"].items()), sorted(b["optimizer"]["state"].items())):
        assert all(torch.equal(x[k], y[k]) for k in x)
    # the same records, except the stopped run's own final evaluation at step 3
    resumed = [r for r in read_metrics(part / "metrics.jsonl") if not (r["kind"] == "eval" and r["step"] == 3)]
    assert _no_timing(read_metrics(full / "metrics.jsonl")) == _no_timing(resumed)
    # gradients were not all zero
    assert any(r["mixed_groups"] > 0 for r in read_metrics(full / "metrics.jsonl", "train"))
    # a complete run resumed again is returned as it is
    again = train(tiny(steps=5), part, resume=True, show_progress=False)
    assert again.summary["final_eval"] == res.summary["final_eval"]


@pytest.mark.parametrize("method", list(maxpo.METHODS))
def test_every_advantage_method_plugs_in(tmp_path: Path, method: str) -> None:
    k = 4 if method in ("tang_loo", "grpo_passk") else 2  # defined only for K = B
    res = train(tiny(steps=1, method=method, k=k), tmp_path / method, show_progress=False)
    rec = read_metrics(tmp_path / method / "metrics.jsonl", "train")[0]
    assert rec["samples"] == 16 and all(v == v for v in rec.values() if isinstance(v, float))
    assert res.summary["config"]["rl"]["method"] == method


@pytest.mark.parametrize("aggregation, extra", [("token", {}), ("sequence", {"updates_per_batch": 2, "kl_coef": 0.1})])
def test_loss_options_run(tmp_path: Path, aggregation: str, extra: dict) -> None:
    train(tiny(steps=2, aggregation=aggregation, **extra), tmp_path / "run", show_progress=False)
    recs = read_metrics(tmp_path / "run" / "metrics.jsonl", "train")
    assert len(recs) == 2
    if extra.get("kl_coef"):
        assert recs[1]["kl"] >= 0 and recs[0]["loss"] == recs[0]["loss"]


@pytest.mark.parametrize(
    "change, match",
    [
        ({"method": "maxpo", "k": 4}, "cannot run with K=4, B=4"),
        ({"method": "tang_loo", "k": 2}, "tang_loo"),
        ({"method": "chen_passk", "reward": "partial"}, "binary"),
        ({"method": "bogus"}, "unknown advantage method 'bogus'"),
        ({"reward": "dense"}, "reward must be one of"),
        ({"aggregation": "batch"}, "aggregation must be one of"),
        ({"prompts_per_step": 0}, "prompts_per_step"),
    ],
)
def test_bad_configurations_are_refused(change: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        validate(tiny(**change))


def test_bad_eval_k_is_refused() -> None:
    cfg = dataclasses.replace(tiny(), eval=EvalConfig(prompts=8, samples=4, ks=(1, 8)))
    with pytest.raises(ValueError, match=r"eval ks \[8\]"):
        validate(cfg)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given when CUDA is absent")
def test_cuda_asked_for_but_absent() -> None:
    with pytest.raises(DeviceUnavailable, match="CUDA was asked for"):
        resolve_device("cuda")
    with pytest.raises(DeviceUnavailable, match="CUDA was asked for"):
        train(preset("gpu"), "/nonexistent/never-created", show_progress=False)
    assert not Path("/nonexistent/never-created").exists()


def test_run_directory_rules(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train(tiny(steps=1), tmp_path / "none", resume=True, show_progress=False)
    train(tiny(steps=1), tmp_path / "run", show_progress=False)
    with pytest.raises(FileExistsError, match="--resume"):
        train(tiny(steps=1), tmp_path / "run", show_progress=False)
    with pytest.raises(ValueError, match="rl.lr"):
        train(tiny(steps=1, lr=1e-2), tmp_path / "run", resume=True, show_progress=False)


def test_config_round_trip_and_presets() -> None:
    for name in ("smoke", "cpu", "gpu"):
        cfg = preset(name)
        validate(cfg)
        assert LabConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert preset("smoke").warmstart_key() == preset("cpu").warmstart_key() != preset("gpu").warmstart_key()
    with pytest.raises(ValueError, match="unknown preset"):
        preset("huge")
    with pytest.raises(ValueError, match="unknown config keys"):
        LabConfig.from_dict({"colour": 1})


def test_cli_help_train_eval_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0 and "compare" in capsys.readouterr().out
    small = ["--preset", "smoke", "--warmstart-steps", "20", "--steps", "2", "--eval-every", "1",
             "--eval-prompts", "8", "--prompts-per-step", "2", "--no-progress"]
    assert main(["train", *small, "--method", "pkpo_loo1", "--out", str(tmp_path / "run")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["final_eval"]["step"] == 2
    assert main(["eval", "--run", str(tmp_path / "run"), "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["step"] == 2
    assert main(["compare", *small, "--methods", "grpo,maxpo", "--seeds", "0,1", "--work-dir", str(tmp_path / "cmp"),
                 "--out", str(tmp_path / "cmp.json")]) == 0
    result = json.loads((tmp_path / "cmp.json").read_text())
    assert result["methods"] == ["grpo", "maxpo"] and len(result["runs"]) == 4
    assert {"device", "torch", "git_commit", "git_dirty", "command", "wall_seconds"} <= set(result["provenance"])
    s = result["summary"]["maxpo"]
    assert len(s["final"]["pass@1"]["values"]) == 2 and 0 <= s["share"]["adv"] < 1
    # without --resume the finished runs are not overwritten; with it they are reused as they are
    assert main(["compare", *small, "--methods", "grpo,maxpo", "--seeds", "0,1", "--work-dir", str(tmp_path / "cmp"),
                 "--out", str(tmp_path / "cmp2.json")]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["compare", *small, "--methods", "grpo,maxpo", "--seeds", "0,1", "--work-dir", str(tmp_path / "cmp"),
                 "--out", str(tmp_path / "cmp2.json"), "--resume"]) == 0
    again = json.loads((tmp_path / "cmp2.json").read_text())
    assert again["summary"]["maxpo"]["final"] == result["summary"]["maxpo"]["final"]
    assert main(["train", "--preset", "smoke", "--method", "maxpo", "--k", "16", "--out", str(tmp_path / "bad")]) == 2
    assert "cannot run with K=16" in capsys.readouterr().err


def test_ctrl_c_checkpoints_the_finished_step_and_resume_matches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import signal

    import maxpo.lab.train as lab_train

    train(tiny(steps=5), tmp_path / "full", show_progress=False)
    original = lab_train._rl_step

    def interrupted_at_step_3(*args: Any, **kwargs: Any) -> dict:
        rec = original(*args, **kwargs)
        if rec["step"] == 3:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C in the middle of the run
        return rec

    monkeypatch.setattr(lab_train, "_rl_step", interrupted_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        train(tiny(steps=5), tmp_path / "cut", show_progress=False)
    assert _state(tmp_path / "cut")["step"] == 3
    monkeypatch.setattr(lab_train, "_rl_step", original)
    train(tiny(steps=5), tmp_path / "cut", resume=True, show_progress=False)
    a, b = _state(tmp_path / "full"), _state(tmp_path / "cut")
    assert all(torch.equal(a["model"][n], b["model"][n]) for n in a["model"])


def test_progress_works_without_tqdm(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import maxpo.lab.progress as prog

    monkeypatch.setattr(prog, "_tqdm", None)
    bar = prog.progress(range(20), desc="work")
    assert list(bar) == list(range(20))
    assert "work: 20/20" in capsys.readouterr().err


def test_resume_after_the_last_checkpoint_adds_no_duplicate_records(tmp_path: Path) -> None:
    train(tiny(steps=2), tmp_path / "run", show_progress=False)
    before = read_metrics(tmp_path / "run" / "metrics.jsonl")
    (tmp_path / "run" / "summary.json").unlink()  # as if it stopped after its last checkpoint
    res = train(tiny(steps=2), tmp_path / "run", resume=True, show_progress=False)
    assert _no_timing(read_metrics(tmp_path / "run" / "metrics.jsonl")) == _no_timing(before)
    assert res.summary["final_eval"]["step"] == 2


def test_an_unwritable_cache_keeps_the_trained_warm_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Writing the cache fails (its directory is a file): a warning, and the trained model is still returned."""
    from maxpo.lab.warmstart import warm_start

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("MAXPO_LAB_CACHE", str(blocker / "cache"))
    cfg = dataclasses.replace(tiny(), warmstart=dataclasses.replace(WARM, steps=3))
    model, _, info = warm_start(cfg, torch.device("cpu"), bf16=False, show=False)
    assert info["steps"] == 3 and not info["cached"]
    assert "could not cache the warm start" in capsys.readouterr().err
    retrained, _, _ = warm_start(cfg, torch.device("cpu"), bf16=False, show=False, use_cache=False)  # deterministic
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), retrained.state_dict().values()))
