"""The lab's gradient study (maxpo.lab.gradvar.gradient_study and its estimators) against independent computations.

Expectations are written by hand or computed by a different route: numpy's own
covariance per coordinate, a brute-force grid over lambda, autograd of the
training loss over the whole batch (for the per-answer score functions).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from maxpo.lab.gradvar import PromptMoments, bootstrap_prompts, family_summary, per_sample_scores
from maxpo.lab.loss import advantage_scale, policy_loss, scaled_advantages
from maxpo.lab.model import GPT, GPTConfig
from maxpo.lab.sampling import teacher_rollout, token_logprobs

torch.set_num_threads(1)


def test_trace_covariance_by_hand() -> None:
    # one prompt, one coordinate, two repeats: a = (1, 3), b = (2, 6):
    # Cov = [(1 - 2)(2 - 4) + (3 - 2)(6 - 4)] / (2 - 1) = 4; Var a = [1 + 1] / 1 = 2
    mom = PromptMoments([("a", "b"), ("a", "a")])
    mom.add({"a": torch.tensor([[1.0]]), "b": torch.tensor([[2.0]])})
    mom.add({"a": torch.tensor([[3.0]]), "b": torch.tensor([[6.0]])})
    assert mom.trace_cov("a", "b")[0] == pytest.approx(4.0)
    assert mom.trace_cov("b", "a")[0] == pytest.approx(4.0)
    assert mom.trace_cov("a", "a")[0] == pytest.approx(2.0)
    with pytest.raises(KeyError, match="not accumulated"):
        mom.trace_cov("b", "b")


def test_trace_covariance_matches_numpy_per_coordinate() -> None:
    rng = np.random.default_rng(3)
    p, r, d = 3, 7, 5
    a, b = rng.normal(size=(r, p, d)), rng.normal(size=(r, p, d))
    mom = PromptMoments([("a", "b"), ("b", "b")])
    for i in range(r):
        mom.add({"a": torch.from_numpy(a[i]), "b": torch.from_numpy(b[i])})
    for q in range(p):
        want_ab = sum(np.cov(a[:, q, j], b[:, q, j])[0, 1] for j in range(d))
        want_bb = sum(np.var(b[:, q, j], ddof=1) for j in range(d))
        assert mom.trace_cov("a", "b")[q] == pytest.approx(want_ab, rel=1e-12)
        assert mom.trace_cov("b", "b")[q] == pytest.approx(want_bb, rel=1e-12)


def test_family_summary_by_hand() -> None:
    # V(l) = 4 - 2 l + 2 l^2: minimum at l = 1/2, V = 3.5; V(1) = 4, V(0) = 4
    s = family_summary(4.0, 1.0, 2.0)
    assert s["lambda_star"] == pytest.approx(0.5)
    assert s["var_star_over_var1"] == pytest.approx(3.5 / 4)
    assert s["var0_over_var1"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="curvature"):
        family_summary(1.0, 0.0, 0.0)


def test_family_summary_matches_a_grid_over_prescribed_gradients() -> None:
    rng = np.random.default_rng(0)
    r, d = 400, 6
    g_loo = rng.normal(size=(r, d)) * np.arange(1, d + 1)
    g_max = 0.6 * g_loo + rng.normal(size=(r, d))  # prescribed: correlated ends
    mom = PromptMoments([("loo", "loo"), ("loo", "e"), ("e", "e")])
    for i in range(r):
        mom.add({"loo": torch.from_numpy(g_loo[i:i + 1]), "e": torch.from_numpy(g_loo[i:i + 1] - g_max[i:i + 1])})
    s = family_summary(*(float(mom.trace_cov(*k)[0]) for k in [("loo", "loo"), ("loo", "e"), ("e", "e")]))

    def var(lam: float) -> float:  # sample trace variance of (1 - lam) g_loo + lam g_max, directly
        return float(np.var((1 - lam) * g_loo + lam * g_max, axis=0, ddof=1).sum())

    grid = np.linspace(-1, 2, 30001)
    best = grid[np.argmin([var(x) for x in grid])]
    assert s["lambda_star"] == pytest.approx(best, abs=2e-4)
    assert s["var_star_over_var1"] == pytest.approx(var(s["lambda_star"]) / var(1.0), rel=1e-9)
    assert s["var0_over_var1"] == pytest.approx(var(0.0) / var(1.0), rel=1e-9)


def test_best_shift_recovers_a_prescribed_one() -> None:
    # h = 0.3 S + n with n orthogonal to S in every repeat: c* = Cov(h, S) / Var(S) = 0.3
    rng = np.random.default_rng(1)
    mom = PromptMoments([("h", "S"), ("S", "S")])
    for _ in range(5):
        s = np.zeros(4)
        s[:2] = rng.normal(size=2)
        n = np.zeros(4)
        n[2:] = rng.normal(size=2)
        mom.add({"h": torch.from_numpy((0.3 * s + n)[None]), "S": torch.from_numpy(s[None])})
    assert mom.trace_cov("h", "S")[0] / mom.trace_cov("S", "S")[0] == pytest.approx(0.3)


def test_bootstrap_over_prompts() -> None:
    vals = np.array([1.0, 2.0, 3.0, 10.0])

    def mean(w: np.ndarray) -> dict[str, float]:
        return {"mean": float(w @ vals / w.sum()), "const": 7.0}

    out = bootstrap_prompts(mean, 4, n_boot=2000)
    assert out["mean"]["value"] == pytest.approx(4.0)
    assert 1.0 <= out["mean"]["lo"] < 4.0 < out["mean"]["hi"] <= 10.0
    assert out["const"] == {"value": 7.0, "lo": 7.0, "hi": 7.0}
    with pytest.raises(ValueError, match="at least 2"):
        bootstrap_prompts(mean, 1)


def test_per_answer_scores_give_the_training_gradient() -> None:
    """sum_i A_i S_i / G equals minus the autograd gradient of the lab's sequence loss, padded prompts included."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=12, n_layer=2, n_head=2, d_model=16, max_len=32))
    model.eval()
    b, k = 4, 2
    prompts = [[1, 2, 3]] * b + [[4, 5]] * b  # two prompts of different lengths: the second is left-padded
    answers = [[6], [7, 8], [6, 6, 6], [9]] + [[8, 8], [7], [6, 9, 9], [6]]
    roll = teacher_rollout(prompts, answers, eos_id=11, pad_id=0, device=torch.device("cpu"))
    assert roll.attention_mask is not None
    rewards = torch.tensor([[1.0, 0, 0, 1], [0, 1, 0, 0]])
    adv = scaled_advantages(rewards, k, "maxpo", advantage_scale("maxpo", b, k)).reshape(-1)
    logp = token_logprobs(model, roll)
    loss = policy_loss(logp, logp.detach(), adv, roll.completion_mask, "sequence", 2.0).loss
    model.zero_grad()
    loss.backward(retain_graph=True)
    want = -torch.cat([p.grad.reshape(-1) for p in model.parameters()]).double()
    scores = per_sample_scores(model, roll, b)
    got = (adv.double()[:, None] * scores).sum(0) / 2
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-6)
    # each row is one answer's own score: its log-probability's gradient alone
    model.zero_grad()
    (logp[5] * roll.completion_mask[5]).sum().backward()
    one = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).double()
    assert torch.allclose(scores[5], one, rtol=1e-4, atol=1e-6)
