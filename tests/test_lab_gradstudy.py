"""The lab's gradient study (maxpo.lab.gradvar.gradient_study and its estimators) against independent computations.

Expectations are written by hand or computed by a different route: numpy's own
covariance per coordinate, a brute-force grid over lambda, autograd of the
training loss over the whole batch (for the per-answer score functions).
"""
from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
import torch

from maxpo.family import RunningLambda
from maxpo.lab.gradvar import (
    PromptMoments,
    adaptive_lambdas,
    adaptive_trace_variance,
    bootstrap_prompts,
    family_summary,
    per_sample_scores,
)
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


def _grams(h: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(P, R, R) Gram matrices over repeats of prescribed (P, R, d) series h and e."""
    return (np.einsum("prd,psd->prs", h, h), np.einsum("prd,psd->prs", h, e), np.einsum("prd,psd->prs", e, e))


def test_adaptive_lambdas_by_hand() -> None:
    # column sums over the two prompts: cross (4, 1, 4), sq (4, 4, 2)
    cross = np.array([[1.0, 2.0, 0.0], [3.0, -1.0, 4.0]])
    sq = np.array([[2.0, 1.0, 1.0], [2.0, 3.0, 1.0]])
    # before repeat 0: the initial 1; then 4/4, (4+1)/(4+4), (4+1+4)/(4+4+2)
    assert adaptive_lambdas(cross, sq) == pytest.approx([1.0, 1.0, 5 / 8, 9 / 10], abs=1e-15)
    # weights (2, 0): cross (2, 4, 0), sq (4, 2, 2): 2/4, 6/6, 6/8
    assert adaptive_lambdas(cross, sq, np.array([2.0, 0.0])) == pytest.approx([1.0, 0.5, 1.0, 0.75], abs=1e-15)
    # no information in the first repeat (e = 0 there): the initial value stays one more repeat
    assert adaptive_lambdas(np.array([[0.0, 3.0]]), np.array([[0.0, 4.0]]), initial=0.25) == pytest.approx(
        [0.25, 0.25, 0.75])
    with pytest.raises(ValueError, match="prompts, repeats"):
        adaptive_lambdas(cross, sq[:, :2])


def test_adaptive_lambdas_are_running_lambdas_before_each_batch() -> None:
    rng = np.random.default_rng(5)
    p, r, d = 3, 6, 4
    h, h_max = rng.normal(size=(p, r, d)), rng.normal(size=(p, r, d))
    e = h - h_max
    run = RunningLambda()
    want = []
    for i in range(r):
        want.append(run.lam)
        run.update_gradients(h[:, i], h_max[:, i])
    want.append(run.lam)
    got = adaptive_lambdas(np.einsum("prd,prd->pr", h, e), np.einsum("prd,prd->pr", e, e))
    assert got == pytest.approx(want, rel=1e-12)


def test_adaptive_trace_variance_by_hand() -> None:
    # prompt 0: h = (1,0), (0,2), (1,1); e = (1,1), (0,1), (2,0); lambda = (1, 2, 1/2)
    #   a = (0,-1), (0,0), (0,1): mean 0, sum of squares 2, over R - 1 = 2: 1
    # prompt 1: h = (2,0), 0, 0; e = 0: a = h, mean (2/3, 0),
    #   sum of squares (4/3)^2 + (2/3)^2 + (2/3)^2 = 24/9, over 2: 4/3
    h = np.array([[[1.0, 0], [0, 2], [1, 1]], [[2, 0], [0, 0], [0, 0]]])
    e = np.array([[[1.0, 1], [0, 1], [2, 0]], [[0, 0], [0, 0], [0, 0]]])
    got = adaptive_trace_variance(*_grams(h, e), np.array([1.0, 2.0, 0.5]))
    assert got == pytest.approx([1.0, 4 / 3], rel=1e-14)
    with pytest.raises(ValueError, match="at least 2"):
        adaptive_trace_variance(*_grams(h[:, :1], e[:, :1]), np.array([1.0]))


def test_adaptive_trace_variance_at_a_constant_lambda_is_the_family_parabola() -> None:
    rng = np.random.default_rng(6)
    p, r, d = 2, 9, 5
    h, e = rng.normal(size=(p, r, d)), rng.normal(size=(p, r, d)) * 0.5
    mom = PromptMoments([("h", "h"), ("h", "e"), ("e", "e")])
    for i in range(r):
        mom.add({"h": torch.from_numpy(h[:, i]), "e": torch.from_numpy(e[:, i])})
    v0, v1, v2 = mom.trace_cov("h", "h"), mom.trace_cov("h", "e"), mom.trace_cov("e", "e")
    for lam in (-0.5, 0.0, 0.3, 1.0, 2.0):
        got = adaptive_trace_variance(*_grams(h, e), np.full(r, lam))
        assert got == pytest.approx(v0 - 2 * lam * v1 + lam**2 * v2, rel=1e-10)


def test_adaptive_variance_is_unbiased_for_the_mean_variance_of_its_steps() -> None:
    """Exact enumeration: one prompt, scalar gradients, R = 3 batches, (h, e) drawn from three equally likely pairs.

    E e = 0 (as for the family's e), E h = 1, Var h = 2/3, Var e = 2/3, Cov(h, e) = -1/3, so
    Var(h - l e) = 2/3 + 2 l / 3 + 2 l^2 / 3. Lambda of batch r is the running ratio of sum(h e) over
    sum(e^2) of the batches before it (1 while that is empty or e = 0). The code's estimate, averaged over
    all 27 equally likely sequences, must equal the average over r of Var(h - lambda_r e), computed here
    with fractions; the same estimate with an in-sample lambda (batches up to and including r) must not.
    """
    outcomes = [(Fraction(1), Fraction(1)), (Fraction(2), Fraction(-1)), (Fraction(0), Fraction(0))]
    r = 3

    def var(lam: Fraction) -> Fraction:
        return Fraction(2, 3) + 2 * lam / 3 + 2 * lam**2 / 3

    def running(seq: tuple[tuple[Fraction, Fraction], ...], upto: int) -> Fraction:
        num = sum((h * e for h, e in seq[:upto]), Fraction(0))
        den = sum((e * e for _, e in seq[:upto]), Fraction(0))
        return num / den if den else Fraction(1)

    want = Fraction(0)
    got = 0.0
    got_in_sample = 0.0
    for seq in itertools.product(outcomes, repeat=r):
        lams = [running(seq, i) for i in range(r)]
        want += sum((var(x) for x in lams), Fraction(0)) / r / 3**r
        h = np.array([[[float(x)] for x, _ in seq]])
        e = np.array([[[float(y)] for _, y in seq]])
        lam_code = adaptive_lambdas(h[..., 0] * e[..., 0], e[..., 0] ** 2)
        assert lam_code[:-1] == pytest.approx([float(x) for x in lams], abs=1e-15)
        got += float(adaptive_trace_variance(*_grams(h, e), lam_code[:-1])[0]) / 3**r
        got_in_sample += float(adaptive_trace_variance(*_grams(h, e), lam_code[1:])[0]) / 3**r
    assert got == pytest.approx(float(want), rel=1e-12)
    assert abs(got_in_sample - float(want)) > 1e-3
