"""The lab on a GPU: bf16 autocast, KV-cached sampling and a few RL steps (skipped without CUDA)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from maxpo.lab.config import EvalConfig, preset
from maxpo.lab.metrics import read_metrics
from maxpo.lab.model import GPT, GPTConfig
from maxpo.lab.train import train

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_bf16_cache_matches_full_forward() -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=21, n_layer=2, n_head=4, d_model=64)).cuda().eval()
    x = torch.randint(3, 21, (8, 12), device="cuda")
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        full = model(x).float()
        cache = model.new_cache(8, 12)
        parts = [model(x[:, :5], cache=cache)] + [model(x[:, t : t + 1], cache=cache) for t in range(5, 12)]
    torch.testing.assert_close(torch.cat(parts, 1).float(), full, atol=0.1, rtol=0.05)


@pytest.mark.parametrize("preset_name", ["smoke", "gpu"])
def test_a_few_rl_steps_on_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, preset_name: str) -> None:
    monkeypatch.setenv("MAXPO_LAB_CACHE", str(tmp_path / "cache"))
    cfg = preset(preset_name)
    cfg = dataclasses.replace(cfg, device="cuda", threads=None,
                              warmstart=dataclasses.replace(cfg.warmstart, steps=50, stop_at_pass1=None),
                              eval=EvalConfig(prompts=32, samples=8, every=3, ks=(1, 4, 8)))
    res = train(cfg.with_rl(steps=3), tmp_path / "run", show_progress=False)
    recs = read_metrics(tmp_path / "run" / "metrics.jsonl", "train")
    assert len(recs) == 3 and all(r["grad_norm"] == r["grad_norm"] for r in recs)
    assert res.summary["provenance"]["device"].startswith(torch.cuda.get_device_name())
