"""Data-parallel training: two gloo processes on CPU through torchrun match one process."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from maxpo.lab.config import EvalConfig, LabConfig, ModelSpec, RLConfig, WarmStartConfig
from maxpo.lab.metrics import read_metrics
from maxpo.lab.task import TaskConfig
from maxpo.lab.train import train

torch.set_num_threads(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.ddp
@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="needs gloo")
def test_two_cpu_processes_match_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAXPO_LAB_CACHE", str(tmp_path / "cache"))
    cfg = LabConfig(
        task=TaskConfig(n_numbers=2, max_number=9, max_target=81),
        model=ModelSpec(n_layer=2, n_head=4, d_model=64),
        warmstart=WarmStartConfig(steps=80, batch_size=128, lr=3e-3),
        rl=RLConfig(method="maxpo", k=2, prompts_per_step=6, samples_per_prompt=4, steps=2, lr=1e-3, max_new_tokens=8,
                    aggregation="token"),
        eval=EvalConfig(prompts=10, samples=4, every=2, ks=(1, 2)),
        device="cpu",
        threads=1,
    )
    single = train(cfg, tmp_path / "single", show_progress=False)  # also fills the warm-start cache
    (tmp_path / "cfg.json").write_text(json.dumps(cfg.to_dict()))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MAXPO_LAB_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           "-m", "maxpo.lab", "train", "--config", str(tmp_path / "cfg.json"), "--out", str(tmp_path / "ddp"),
           "--no-progress"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["world_size"] == 2
    a, b = summary["param_sum_by_rank"]
    assert a == b  # DDP kept both processes' parameters identical
    s = torch.load(tmp_path / "single" / "checkpoint.pt", weights_only=True)["model"]
    d = torch.load(tmp_path / "ddp" / "checkpoint.pt", weights_only=True)["model"]
    # Same global batch, same answers: the averaged gradient equals the single-process one up to
    # float rounding. Adam divides by sqrt(v) + 1e-8, so on coordinates whose gradient is zero
    # in exact arithmetic (e.g. the key biases: softmax ignores a constant shift) rounding noise
    # of 1e-10 still moves the weight by a small fraction of a step; hence a tolerance in units
    # of the learning rate, and a much tighter one on the mean difference.
    lr = cfg.rl.lr
    diffs = torch.cat([(d[n] - s[n]).abs().flatten() for n in s])
    assert float(diffs.max()) < 0.25 * lr * cfg.rl.steps
    assert float(diffs.mean()) < 1e-3 * lr
    assert single.summary["param_sum_by_rank"][0] == pytest.approx(a, rel=1e-5)
    one = read_metrics(tmp_path / "single" / "metrics.jsonl", "train")
    two = read_metrics(tmp_path / "ddp" / "metrics.jsonl", "train")
    for x, y in zip(one, two):  # same answers sampled, so the same rewards
        assert (x["reward"], x["tokens"], x["mixed_groups"]) == (y["reward"], y["tokens"], y["mixed_groups"])
    assert any(x["mixed_groups"] > 0 for x in one)  # the gradients compared were not all zero
