"""The lab with a local Hugging Face model: a tiny random Llama and character tokenizer saved by the test."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

from maxpo.lab.config import EvalConfig, LabConfig, ModelSpec, RLConfig, WarmStartConfig  # noqa: E402
from maxpo.lab.evaluate import encode_prompt  # noqa: E402
from maxpo.lab.hf import load_hf, save_tiny_random_model  # noqa: E402
from maxpo.lab.metrics import read_metrics  # noqa: E402
from maxpo.lab.sampling import pad_prompts, sample, token_logprobs  # noqa: E402
from maxpo.lab.seeding import uniforms  # noqa: E402
from maxpo.lab.task import DIFFICULTIES, sample_puzzles  # noqa: E402
from maxpo.lab.train import train  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_random_model(tmp_path_factory.mktemp("tiny-hf") / "model")


def test_hf_tokenizer_round_trip(model_dir: Path) -> None:
    _, tok = load_hf(model_dir, torch.device("cpu"))
    for p in sample_puzzles(DIFFICULTIES["hard"], 30, seed=0):
        for text in (p.prompt, p.solution):
            ids = tok.encode(text)
            assert len(ids) == len(text) and tok.decode(ids) == text
    assert tok.decode([tok.bos_id, *tok.encode("1+2"), tok.eos_id]) == "1+2"


def test_hf_cached_sampling_matches_full_forward(model_dir: Path) -> None:
    """Left-padded prompts, KV cache and position ids give the model's own distribution."""
    model, tok = load_hf(model_dir, torch.device("cpu"))
    model.eval()
    puzzles = sample_puzzles(DIFFICULTIES["medium"], 6, seed=1)
    prompts = [encode_prompt(tok, p) for p in puzzles]
    assert len({len(p) for p in prompts}) > 1  # some padding happens
    roll = sample(model, prompts, uniforms(0, len(prompts), 6), tok.eos_id, tok.pad_id)
    lp = token_logprobs(model, roll)
    for i, p in enumerate(prompts):
        seq = torch.tensor([p + roll.input_ids[i, roll.prompt_len:][roll.completion_mask[i]].tolist()])
        with torch.no_grad():
            logits = model(seq)[0]
        n = int(roll.completion_mask[i].sum())
        want = torch.log_softmax(logits[len(p) - 1 : len(p) - 1 + n], -1).gather(1, seq[0, len(p) :, None]).squeeze(1)
        torch.testing.assert_close(lp[i, :n], want, atol=1e-4, rtol=1e-4)
    ids, mask = pad_prompts(prompts, tok.pad_id, torch.device("cpu"))
    assert ids.shape[0] == len(prompts) and not bool(mask.all())


def test_lab_runs_on_a_local_hf_model(model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAXPO_LAB_CACHE", str(tmp_path / "cache"))
    cfg = LabConfig(
        task=DIFFICULTIES["medium"],
        model=ModelSpec(hf_path=str(model_dir)),
        warmstart=WarmStartConfig(steps=5, batch_size=16, lr=1e-3),
        rl=RLConfig(method="maxpo", k=2, prompts_per_step=2, samples_per_prompt=4, steps=2, lr=1e-4, max_new_tokens=8),
        eval=EvalConfig(prompts=4, samples=2, every=1, ks=(1, 2)),
        device="cpu",
        threads=1,
    )
    res = train(cfg, tmp_path / "run", show_progress=False)
    recs = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in recs if r["kind"] == "train"] == [1, 2]
    assert res.summary["warmstart"]["steps"] == 5 and (tmp_path / "run" / "checkpoint.pt").is_file()
    assert all(r["grad_norm"] == r["grad_norm"] for r in recs if r["kind"] == "train")


def test_missing_model_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a Hugging Face model directory"):
        load_hf(tmp_path, torch.device("cpu"))


def test_pretrained_preset_dry_run_with_a_large_vocabulary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pretrained preset's path on a tiny random Qwen2-style model with Qwen2's 151,936-token vocabulary:
    warm start, sampling, micro-batched log-probabilities with KL to the reference, evaluation."""
    import dataclasses

    from maxpo.lab.config import preset
    from maxpo.lab.hf import save_tiny_random_model_like_qwen2

    monkeypatch.setenv("MAXPO_LAB_CACHE", str(tmp_path / "cache"))
    model_dir = save_tiny_random_model_like_qwen2(tmp_path / "qwen")
    cfg = preset("pretrained")
    cfg = dataclasses.replace(
        cfg, device="cpu", threads=1, model=dataclasses.replace(cfg.model, hf_path=str(model_dir)),
        warmstart=dataclasses.replace(cfg.warmstart, steps=2, batch_size=4),
        eval=EvalConfig(prompts=4, samples=4, every=1, ks=(1, 4)),
    ).with_rl(steps=1, prompts_per_step=2, samples_per_prompt=8, micro_batch=5, max_new_tokens=4)
    res = train(cfg, tmp_path / "run", show_progress=False)
    rec = read_metrics(tmp_path / "run" / "metrics.jsonl", "train")[0]
    assert rec["samples"] == 16 and rec["kl"] >= 0 and rec["grad_norm"] == rec["grad_norm"]
    assert res.summary["final_eval"]["n_prompts"] == 4
