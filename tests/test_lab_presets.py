"""Every preset runs: its real configuration, on the CPU, for one RL step and its evaluations.

Only the device changes (CPU, where bf16 is off by default; bf16 autocast on the
CPU is tested in ``test_lab_loss``) and the warm start is taken from a cache
filled with the untrained model (training it is the slow part, and it is tested
in ``test_lab_train``). The cpu, gpu and pretrained presets' evaluation sizes are
lowered *after* their real sizes passed the pre-flight checks (held-out puzzles
enough for the evaluation, context, methods), because sampling their thousands
of evaluation answers takes minutes on one busy CPU thread. The pretrained preset
runs on a tiny random Qwen2-style model with a 32k vocabulary (the 152k one is
dry-run in ``test_lab_hf``).
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from maxpo.lab.config import PRESETS, LabConfig, preset
from maxpo.lab.metrics import read_metrics
from maxpo.lab.train import train, validate
from maxpo.lab.warmstart import build_policy, heldout_settings, save_warm_start

pytestmark = pytest.mark.training  # every preset trains a step: left out of make check

torch.set_num_threads(1)

#: The presets whose evaluation is too slow for the CPU at its real size (checked, then lowered).
_EVAL_LOWERED = {"gpu", "pretrained", "cpu"}


def _on_cpu(name: str, model_dir: Path | None) -> LabConfig:
    cfg = preset(name)
    cfg = dataclasses.replace(cfg, device="cpu", threads=1)
    if name == "pretrained":
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, hf_path=str(model_dir)))
    return cfg


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    from maxpo.lab.hf import save_tiny_random_model_like_qwen2

    return save_tiny_random_model_like_qwen2(tmp_path_factory.mktemp("qwen") / "model", vocab_size=32_000)


def test_the_preset_list_is_the_tested_one() -> None:
    assert set(PRESETS) == {"smoke", "cpu", "gpu", "pretrained"}


@pytest.mark.parametrize("name", ["smoke", "cpu", "gpu", "pretrained"])
def test_every_preset_runs_one_step_and_evaluates(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  request: pytest.FixtureRequest) -> None:
    monkeypatch.setenv("MAXPO_LAB_CACHE", str(tmp_path / "cache"))
    model_dir = request.getfixturevalue("qwen_dir") if name == "pretrained" else None
    cfg = _on_cpu(name, model_dir)
    validate(cfg)  # the real configuration passes every pre-flight check (held-out size included)
    if name in _EVAL_LOWERED:
        ev = cfg.eval
        cfg = dataclasses.replace(cfg, eval=dataclasses.replace(
            ev, prompts=min(ev.prompts, 16), curve_prompts=min(ev.curve_prompts, 2)))
    cfg = cfg.with_rl(steps=1)
    model, _ = build_policy(cfg, torch.device("cpu"))  # the untrained model stands in for the trained warm start
    save_warm_start(cfg, model, {"key": cfg.warmstart_key(), "steps": cfg.warmstart.steps, "heldout": {},
                                 "heldout_settings": heldout_settings(cfg)})
    res = train(cfg, tmp_path / "run", show_progress=False)
    recs = read_metrics(tmp_path / "run" / "metrics.jsonl")
    train_recs = [r for r in recs if r["kind"] == "train"]
    assert len(train_recs) == 1 and train_recs[0]["samples"] == cfg.rl.prompts_per_step * cfg.rl.samples_per_prompt
    assert math.isfinite(train_recs[0]["grad_norm"]) and math.isfinite(train_recs[0]["loss"])
    assert [r["step"] for r in recs if r["kind"] == "eval"] == [0, 1]
    assert res.summary["final_eval"]["n_prompts"] == cfg.eval.prompts
    assert res.summary["warmstart"]["cached"]
    curves = [r for r in recs if r["kind"] == "curve"]
    assert len(curves) == (2 if cfg.eval.curve_samples else 0)
