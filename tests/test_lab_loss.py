"""The lab's loss and training step against independent expectations.

Each test targets a bug that once survived the suite (issue 15): an advantage
left unscaled, the wrong sequence normaliser, PPO's old log-probabilities
refreshed every update, gradient clipping not applied, the bf16 flag ignored or
the sampling softmax not in float32, and warm-start early stopping never run.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import maxpo
import maxpo.lab.train as lab_train
from maxpo.lab.config import EvalConfig, LabConfig, ModelSpec, RLConfig, WarmStartConfig
from maxpo.lab.loss import advantage_scale, policy_loss
from maxpo.lab.model import GPT, GPTConfig
from maxpo.lab.sampling import sample, teacher_rollout, token_logprobs
from maxpo.lab.task import TaskConfig
from maxpo.lab.train import train

torch.set_num_threads(1)

#: Written by hand from the lab's design (maxpo/lab/loss.py docstring): the max@K / pass@K
#: methods that estimate grad J_K itself are multiplied by B/K, every other method by 1.
#: The factor the lab must apply to each method's advantages, written by hand: "B/K" for the
#: methods scaled to grad J_K, "B" for maxrl (its B-fold is MaxRL's per-sample r_i/rbar - 1), "1" otherwise.
LOSS_SCALE = {
    "maxpo": "B/K", "maxpo_pairwise": "B/K", "pkpo_s": "B/K", "pkpo_loo": "B/K", "pkpo_loo1": "B/K",
    "maxrl": "B",
    "canonical": "1", "chen_passk": "1", "tang_loo": "1", "grpo_passk": "1", "grpo": "1", "dr_grpo": "1",
    "rloo": "1",
}


def expected_scale(method: str, b: int, k: int) -> float:
    return {"B/K": b / k, "B": float(b), "1": 1.0}[LOSS_SCALE[method]]


@pytest.fixture(autouse=True, scope="module")
def _cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MAXPO_LAB_CACHE", str(tmp_path_factory.mktemp("lab-cache")))
        yield


def tiny(steps: int = 1, **rl: Any) -> LabConfig:
    """Two-number puzzles, a briefly warm-started 2-layer GPT: 8 prompts x 4 answers per step."""
    return LabConfig(
        task=TaskConfig(n_numbers=2, max_number=9, max_target=81),
        model=ModelSpec(n_layer=2, n_head=4, d_model=64),
        warmstart=WarmStartConfig(steps=80, batch_size=128, lr=3e-3),
        rl=RLConfig(**{"k": 2, "prompts_per_step": 8, "samples_per_prompt": 4, "steps": steps, "lr": 1e-3,
                       "max_new_tokens": 8, "max_grad_norm": 0.0, **rl}),
        eval=EvalConfig(prompts=8, samples=4, every=steps, ks=(1, 2)),
        device="cpu",
        threads=1,
        checkpoint_every=steps,
    )


def _record_loss_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record every call of the training step's loss (inputs and the returned statistics)."""
    calls: list[dict[str, Any]] = []
    original = lab_train.policy_loss

    def recording(logp, old_logp, adv, mask, aggregation, denom, clip_eps=0.0, ref_logp=None, kl_coef=0.0):
        parts = original(logp, old_logp, adv, mask, aggregation, denom, clip_eps, ref_logp, kl_coef)
        calls.append({"logp": logp.detach().clone(), "old_logp": old_logp.clone(), "adv": adv.clone(), "mask": mask,
                      "aggregation": aggregation, "denom": denom, "clip_frac": parts.clip_frac})
        return parts

    monkeypatch.setattr(lab_train, "policy_loss", recording)
    return calls


def _record_advantages(monkeypatch: pytest.MonkeyPatch) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Record the rewards and raw advantages of every ``maxpo.advantages`` call."""
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    original = maxpo.advantages

    def recording(rewards, k, method="maxpo", **kw):
        out = original(rewards, k, method=method, **kw)
        seen.append((rewards.clone(), out.clone()))
        return out

    monkeypatch.setattr(maxpo, "advantages", recording)
    return seen


# ----------------------------------------------------------------- the advantage scale
def test_the_scale_table_covers_every_method() -> None:
    assert set(LOSS_SCALE) == set(maxpo.METHODS)


@pytest.mark.parametrize("method", sorted(LOSS_SCALE))
@pytest.mark.parametrize("b, k", [(8, 2), (16, 4), (6, 3), (4, 4)])
def test_advantage_scale_is_exactly_the_tables(method: str, b: int, k: int) -> None:
    want = expected_scale(method, b, k)
    assert advantage_scale(method, b, k) == want


@pytest.mark.parametrize("method", sorted(LOSS_SCALE))
def test_the_training_step_feeds_the_loss_scaled_advantages_and_normaliser(
        method: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What reaches the loss is maxpo.advantages(rewards) x (B/K or 1), with the normaliser G."""
    k = 4 if method in ("tang_loo", "grpo_passk") else 2  # defined for K = B only
    calls = _record_loss_calls(monkeypatch)
    seen = _record_advantages(monkeypatch)
    train(tiny(method=method, k=k), tmp_path / "run", show_progress=False)
    assert len(calls) == 1 and len(seen) >= 1
    rewards, raw = seen[-1]
    assert rewards.shape == (8, 4)
    factor = expected_scale(method, 4, k)
    torch.testing.assert_close(calls[0]["adv"], (raw * factor).reshape(-1), rtol=0, atol=0)
    assert calls[0]["aggregation"] == "sequence" and calls[0]["denom"] == 8  # G prompts, not G x B answers


def test_the_token_normaliser_is_the_token_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _record_loss_calls(monkeypatch)
    train(tiny(aggregation="token"), tmp_path / "run", show_progress=False)
    assert calls[0]["denom"] == float(calls[0]["mask"].sum())


# ----------------------------------------------------------------- the loss itself
def test_sequence_loss_value_and_gradient_by_hand() -> None:
    """First update (ratio 1 in value): L = -(1/G) sum_i A_i |y_i| and dL/dlogp_it = -A_i / G on real tokens,
    the gradient of -(1/G) sum_i A_i log pi(y_i)."""
    torch.manual_seed(0)
    logp = (-torch.rand(6, 5, dtype=torch.float64)).requires_grad_(True)
    mask = torch.tensor([[1, 1, 1, 0, 0]] * 3 + [[1, 1, 1, 1, 1]] * 3, dtype=torch.bool)
    adv = torch.tensor([0.5, -1.0, 2.0, 0.0, 1.5, -0.25], dtype=torch.float64)
    g = 3.0
    parts = policy_loss(logp, logp.detach(), adv, mask, "sequence", g)
    want = -sum(float(adv[i]) * int(mask[i].sum()) for i in range(6)) / g
    assert math.isclose(float(parts.loss.detach()), want, rel_tol=1e-12)
    parts.loss.backward()
    expect = torch.where(mask, -adv[:, None] / g, torch.zeros(()))
    torch.testing.assert_close(logp.grad, expect, rtol=0, atol=1e-15)


def test_ppo_clipping_by_hand() -> None:
    """A ratio beyond 1 + eps with a positive advantage is clipped: no gradient, counted in clip_frac."""
    old = torch.zeros(2, 2, dtype=torch.float64)
    # ratios e^0.5, 1, 1, e^-0.5
    logp = torch.tensor([[0.5, 0.0], [0.0, -0.5]], dtype=torch.float64, requires_grad=True)
    adv = torch.tensor([1.0, -1.0], dtype=torch.float64)
    mask = torch.ones(2, 2, dtype=torch.bool)
    parts = policy_loss(logp, old, adv, mask, "sequence", 1.0, clip_eps=0.2)
    # token (0,0): min(e^.5 * 1, 1.2 * 1) = 1.2, clipped; token (1,1): min(e^-.5 * -1, 0.8 * -1) = -0.8, clipped
    want = -(1.2 + 1.0) - (-1.0 - 0.8)
    assert math.isclose(float(parts.loss.detach()), want, rel_tol=1e-12)
    assert parts.clip_frac == 0.5
    parts.loss.backward()
    assert logp.grad[0, 0] == 0 and logp.grad[1, 1] == 0 and logp.grad[0, 1] == -1 and logp.grad[1, 0] == 1


def test_ppo_old_logprobs_are_the_sampling_ones_and_clipping_acts_on_the_second_update(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _record_loss_calls(monkeypatch)
    train(tiny(method="rloo", k=1, updates_per_batch=2, clip_eps=0.02, lr=3e-2), tmp_path / "run", show_progress=False)
    first, second = calls
    assert torch.equal(first["old_logp"], first["logp"])  # the first update runs on the sampling weights
    assert torch.equal(second["old_logp"], first["old_logp"])  # ... and the second keeps them as pi_old
    m = second["mask"]
    assert not torch.allclose(second["logp"][m], second["old_logp"][m])  # the weights moved
    assert first["clip_frac"] == 0 and second["clip_frac"] > 0


# ----------------------------------------------------------------- gradient clipping
class _NormRecordingAdam(torch.optim.Adam):
    """Adam that records the global gradient norm it is asked to step with."""

    norms: list[float] = []
    grads: list[torch.Tensor] = []

    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        type(self).norms.append(float(torch.linalg.vector_norm(torch.stack([x.norm() for x in grads]))))
        type(self).grads.append(torch.cat([x.reshape(-1) for x in grads]).clone())
        return super().step(closure)


@pytest.mark.parametrize("max_norm", [1e-3, 0.0])
def test_gradient_clipping_is_applied_before_the_step(max_norm: float, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    _NormRecordingAdam.norms = []
    monkeypatch.setattr(lab_train.torch.optim, "Adam", _NormRecordingAdam)
    train(tiny(steps=2, method="rloo", k=1, max_grad_norm=max_norm), tmp_path / "run", show_progress=False)
    logged = lab_train.read_metrics(tmp_path / "run" / "metrics.jsonl", "train")
    assert len(_NormRecordingAdam.norms) == 2
    for rec, stepped in zip(logged, _NormRecordingAdam.norms):
        assert rec["grad_norm"] > 1e-3  # the norm before clipping is logged
        if max_norm > 0:
            assert stepped <= max_norm * (1 + 1e-5) and rec["grad_clipped"] == 1.0
        else:
            assert math.isclose(stepped, rec["grad_norm"], rel_tol=1e-5) and rec["grad_clipped"] == 0.0


# ----------------------------------------------------------------- bf16 autocast on the CPU
@pytest.fixture(scope="module")
def gpt() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=21, n_layer=2, n_head=4, d_model=64)).eval()


def _prompts(n: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(1)
    return [[1] + torch.randint(3, 21, (5,), generator=g).tolist() for _ in range(n)]


def test_bf16_logprobs_run_the_model_in_bf16_and_return_float32(gpt: GPT) -> None:
    roll = teacher_rollout(_prompts(6), [[4, 5, 6, 7]] * 6, eos_id=2, pad_id=0, device=torch.device("cpu"))
    dtypes: list[torch.dtype] = []
    hook = gpt.blocks[0].fc.register_forward_hook(lambda mod, inp, out: dtypes.append(out.dtype))
    captured: list[torch.Tensor] = []
    handle = gpt.register_forward_hook(lambda mod, inp, out: captured.append(out.detach()))
    lp16 = token_logprobs(gpt, roll, bf16=True)
    handle.remove()
    hook.remove()
    assert dtypes == [torch.bfloat16]  # activations in bf16
    assert captured[0].dtype == torch.bfloat16  # the logits too
    assert lp16.dtype == torch.float32
    # the log-probabilities are the float32 log-softmax of those bf16 logits (not a bf16 softmax)
    p = roll.prompt_len
    logits = captured[0][:, p - 1:].double()
    want = torch.log_softmax(logits, -1).gather(-1, roll.input_ids[:, p:, None]).squeeze(-1)
    m = roll.completion_mask
    torch.testing.assert_close(lp16[m].double(), want[m], rtol=0, atol=2e-6)
    lp32 = token_logprobs(gpt, roll, bf16=False)
    assert lp32.dtype == torch.float32 and not torch.equal(lp16[m], lp32[m])
    torch.testing.assert_close(lp16[m], lp32[m], rtol=0, atol=0.1)  # close to the float32 run


class _LogitRecorder(torch.nn.Module):
    """Passes calls to a lab model and keeps the logits of the last position of each call."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.logits: list[torch.Tensor] = []

    def new_cache(self, batch: int, max_len: int) -> Any:
        return self.model.new_cache(batch, max_len)

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        out = self.model(*args, **kwargs)
        self.logits.append(out[:, -1].detach())
        return out


def test_bf16_sampling_draws_from_the_float32_softmax_of_bf16_logits(gpt: GPT) -> None:
    """Every token is the inverse-CDF draw of a float64 softmax of the (bf16) logits; the entropy is its entropy."""
    rec = _LogitRecorder(gpt)
    n, t_max = 32, 6
    u = torch.rand(n, t_max, generator=torch.Generator().manual_seed(2))
    roll = sample(rec, _prompts(n), u, eos_id=2, pad_id=0, bf16=True)
    assert all(x.dtype == torch.bfloat16 for x in rec.logits)
    tokens = roll.input_ids[:, roll.prompt_len:]
    entropy = torch.zeros(n, dtype=torch.float64)
    checked = 0
    for t, logits in enumerate(rec.logits[: tokens.shape[1]]):
        probs = torch.softmax(logits.double(), -1)
        cdf = probs.cumsum(-1)
        active = roll.completion_mask[:, t]
        entropy += torch.where(active, -(probs * probs.log()).sum(-1), torch.zeros(()))
        for i in range(n):
            if not active[i]:
                continue
            target = float(u[i, t]) * float(cdf[i, -1])
            margin = (cdf[i] - target).abs().min()
            if margin > 1e-4:  # away from a CDF boundary the draw is unambiguous
                assert int(tokens[i, t]) == int((cdf[i] <= target).sum()), (i, t)
                checked += 1
    assert checked > n  # most draws were checked
    torch.testing.assert_close(roll.entropy.double(), entropy, rtol=0, atol=1e-4)


def test_the_bf16_setting_reaches_sampling_and_the_update(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flags: list[tuple[str, bool]] = []
    real_sample, real_logprobs = lab_train.sample, lab_train.token_logprobs
    monkeypatch.setattr(lab_train, "sample",
                        lambda *a, **kw: (flags.append(("sample", a[5])), real_sample(*a, **kw))[1])
    monkeypatch.setattr(lab_train, "token_logprobs",
                        lambda *a, **kw: (flags.append(("logprobs", a[2])), real_logprobs(*a, **kw))[1])
    import dataclasses

    train(dataclasses.replace(tiny(), bf16=True), tmp_path / "bf16", show_progress=False)
    assert {name for name, _ in flags} == {"sample", "logprobs"} and all(on for _, on in flags)
    flags.clear()
    train(tiny(), tmp_path / "fp32", show_progress=False)  # CPU default: off
    assert flags and not any(on for _, on in flags)


# ----------------------------------------------------------------- warm-start early stopping
def test_warm_start_stops_early_at_the_first_check_that_reaches_the_threshold() -> None:
    from maxpo.lab.warmstart import warm_start

    base = tiny()
    stop_now = LabConfig.from_dict({**base.to_dict(), "warmstart": {**base.warmstart.__dict__, "steps": 40,
                                                                     "stop_at_pass1": 0.0, "check_every": 5}})
    _, _, info = warm_start(stop_now, torch.device("cpu"), bf16=False, show=False, use_cache=False)
    assert info["steps"] == 5 and [c["step"] for c in info["early_stop_checks"]] == [5]
    never = LabConfig.from_dict({**base.to_dict(), "warmstart": {**base.warmstart.__dict__, "steps": 10,
                                                                  "stop_at_pass1": 1.5, "check_every": 5}})
    _, _, info = warm_start(never, torch.device("cpu"), bf16=False, show=False, use_cache=False)
    assert info["steps"] == 10 and [c["step"] for c in info["early_stop_checks"]] == [5, 10]
    assert all(0 <= c["train_pass@1"] <= 1 for c in info["early_stop_checks"])


def test_micro_batched_updates_give_the_whole_batch_gradient(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Accumulating micro-batches (3 answers at a time) gives the whole batch's gradient."""
    _NormRecordingAdam.norms, _NormRecordingAdam.grads = [], []
    monkeypatch.setattr(lab_train.torch.optim, "Adam", _NormRecordingAdam)
    train(tiny(method="maxpo", micro_batch=0), tmp_path / "whole", show_progress=False)
    train(tiny(method="maxpo", micro_batch=3), tmp_path / "micro", show_progress=False)
    whole, micro = _NormRecordingAdam.grads
    assert float(whole.norm()) > 0
    torch.testing.assert_close(micro, whole, rtol=0, atol=1e-5 * float(whole.abs().max()))


def test_kl_term_and_reported_statistics_by_hand() -> None:
    """KL (k3 estimator exp(d) - d - 1, d = log pi_ref - log pi) added per real token with weight beta.

    Computed here token by token in plain floats: the loss, its gradient
    (-A_i + beta (1 - e^d)) / G, and the reported pg, kl (mean over real tokens) and clip_frac.
    """
    logp = torch.tensor([[-0.2, -1.0, -0.5], [-0.7, -0.1, -3.0]], dtype=torch.float64, requires_grad=True)
    ref = torch.tensor([[-0.4, -0.8, -0.5], [-0.2, -0.3, 9.0]], dtype=torch.float64)  # last token is padding
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)
    adv = torch.tensor([0.75, -1.5], dtype=torch.float64)
    beta, g = 0.3, 2.0
    parts = policy_loss(logp, logp.detach(), adv, mask, "sequence", g, ref_logp=ref, kl_coef=beta)
    lp = logp.detach()
    real = [(i, t) for i in range(2) for t in range(3) if mask[i, t]]
    kls = {}
    for i, t in real:
        d = float(ref[i, t]) - float(lp[i, t])
        kls[i, t] = math.exp(d) - d - 1
    want = sum(-float(adv[i]) + beta * kls[i, t] for i, t in real) / g
    assert math.isclose(float(parts.loss.detach()), want, rel_tol=1e-12)
    assert math.isclose(parts.pg, -sum(float(adv[i]) for i, _ in real) / g, rel_tol=1e-12)
    assert math.isclose(parts.kl, sum(kls.values()) / len(real), rel_tol=1e-12)
    assert parts.clip_frac == 0.0
    parts.loss.backward()
    for i in range(2):
        for t in range(3):
            d = float(ref[i, t]) - float(lp[i, t])
            expect = (-float(adv[i]) + beta * (1 - math.exp(d))) / g if mask[i, t] else 0.0
            assert math.isclose(float(logp.grad[i, t]), expect, rel_tol=1e-12, abs_tol=1e-15), (i, t)
    # no KL without a reference model, and none with a zero weight
    plain = policy_loss(logp, logp.detach(), adv, mask, "sequence", g)
    for off in (policy_loss(logp, logp.detach(), adv, mask, "sequence", g, ref_logp=ref, kl_coef=0.0),
                policy_loss(logp, logp.detach(), adv, mask, "sequence", g, ref_logp=None, kl_coef=beta)):
        assert float(off.loss.detach()) == float(plain.loss.detach()) and off.kl == 0.0


def test_clip_fraction_counts_real_tokens_only_and_no_clipping_at_eps_zero() -> None:
    """clip_frac = clipped real tokens / real tokens; clip_eps = 0 means no clipping at all."""
    old = torch.zeros(2, 2, dtype=torch.float64)
    logp = torch.tensor([[0.5, 0.0], [0.0, 0.6]], dtype=torch.float64)  # ratios e^.5, 1, 1, e^.6 (padding)
    adv = torch.tensor([1.0, 1.0], dtype=torch.float64)
    mask = torch.tensor([[1, 1], [1, 0]], dtype=torch.bool)
    parts = policy_loss(logp, old, adv, mask, "sequence", 1.0, clip_eps=0.2)
    assert parts.clip_frac == 1 / 3  # token (0,0) of the three real ones; the padded (1,1) is not counted
    unclipped = policy_loss(logp, old, adv, mask, "sequence", 1.0, clip_eps=0.0)
    assert unclipped.clip_frac == 0.0
    assert math.isclose(float(unclipped.loss), -(math.exp(0.5) + 1.0 + 1.0), rel_tol=1e-12)
