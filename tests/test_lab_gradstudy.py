"""The lab's gradient study (maxpo.lab.gradvar.gradient_study and its estimators) against independent computations.

Expectations are written by hand or computed by a different route: numpy's own
covariance per coordinate, a brute-force grid over lambda, autograd of the
training loss over the whole batch (for the per-answer score functions).
"""
from __future__ import annotations

import itertools
from fractions import Fraction
from typing import Any

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


def _study_stubs(monkeypatch: pytest.MonkeyPatch, rewards: np.ndarray, scores: np.ndarray, lengths: np.ndarray,
                 per_token: np.ndarray) -> tuple[Any, Any]:
    """gradient_study's sampling, scoring, scores S_i and log-probabilities stubbed: in repeat r, answer j of prompt
    p has reward rewards[r, p, j] (1 = correct), score vector scores[r, p, j], lengths[r, p, j] tokens of
    log-probability per_token[r, p, j] each. Returns (cfg, tokenizer)."""
    from types import SimpleNamespace

    from maxpo.lab import gradvar
    from maxpo.lab.config import EvalConfig, LabConfig, ModelSpec, RLConfig, WarmStartConfig
    from maxpo.lab.task import TaskConfig

    r_n, p_n, b = rewards.shape
    k = 2
    calls = iter(range(r_n))
    current = {"r": 0}

    def fake_sample(model, encoded, u, eos, pad, bf16):  # noqa: ANN001, ANN202
        assert bf16 is False  # the study samples in full precision
        r = current["r"] = next(calls)
        mask = torch.zeros(p_n * b, 4, dtype=torch.bool)
        for i, n in enumerate(lengths[r].reshape(-1)):
            mask[i, :n] = True
        return SimpleNamespace(answers=[[i] for i in range(p_n * b)], completion_mask=mask)

    def fake_score(group, texts):  # noqa: ANN001, ANN202
        flat = rewards[current["r"]].reshape(-1)
        return [SimpleNamespace(correct=flat[int(t)] == 1.0, partial=float(flat[int(t)])) for t in texts]

    def fake_logprobs(model, roll, bf16=False):  # noqa: ANN001, ANN202
        return torch.tensor(per_token[current["r"]].reshape(-1, 1), dtype=torch.float32).expand(-1, 4)

    monkeypatch.setattr(gradvar, "sample_puzzles", lambda cfg, n, seed, split: [SimpleNamespace(prompt="p")] * n)
    monkeypatch.setattr(gradvar, "encode_prompt", lambda tok, p: [1])
    monkeypatch.setattr(gradvar, "sample", fake_sample)
    monkeypatch.setattr(gradvar, "score_batch", fake_score)
    monkeypatch.setattr(gradvar, "per_sample_scores",
                        lambda model, roll, bb: torch.tensor(scores[current["r"]].reshape(p_n * b, -1)))
    monkeypatch.setattr(gradvar, "token_logprobs", fake_logprobs)
    cfg = LabConfig(task=TaskConfig(n_numbers=2, max_number=9, max_target=81),
                    model=ModelSpec(n_layer=1, n_head=2, d_model=16), warmstart=WarmStartConfig(steps=0),
                    rl=RLConfig(k=k, samples_per_prompt=b, max_new_tokens=4, reward="partial"),
                    eval=EvalConfig(prompts=4, samples=4, ks=(1, 2)), device="cpu")
    tok = SimpleNamespace(eos_id=0, pad_id=0, decode=lambda ids: str(ids[0]))
    return cfg, tok


def test_gradient_study_from_prescribed_scores_and_rewards(monkeypatch: pytest.MonkeyPatch) -> None:
    """gradient_study with sampling, scoring, the per-answer scores S_i and the log-probabilities stubbed by
    prescribed values (P = 2 prompts, B = 3 answers, R = 3 repeats, d = 2 parameters). Every reported number is
    recomputed here with numpy from the module docstring's definitions: each method's repeat statistics of
    g_r = sum_p h_pr / P, the family's per-prompt traces summed over prompts (numpy's own covariance per
    coordinate), lambda* and the variance ratios, the curve, delta, c*, the per-prompt and pooled correct/wrong
    means, and the best-shift summary."""

    import maxpo
    from maxpo.lab import gradvar

    p_n, b, r_n, k = 2, 3, 3, 2
    # rewards[r][p][j] (1 = correct) and the answers' scores S[r][p][j] (d = 2), lengths and per-token log-probs
    rewards = np.array([[[1.0, 0.0, 0.5], [0.0, 1.0, 1.0]],
                        [[0.0, 0.0, 1.0], [1.0, 0.5, 0.0]],
                        [[1.0, 0.5, 0.0], [0.0, 0.0, 0.5]]])
    scores = np.array([[[[1.0, 2.0], [0.5, -1.0], [2.0, 0.0]], [[-1.0, 1.0], [3.0, 1.0], [0.0, 2.0]]],
                       [[[2.0, -2.0], [1.0, 1.0], [-0.5, 3.0]], [[1.0, 0.0], [0.0, -1.0], [2.0, 2.0]]],
                       [[[0.0, 1.0], [1.5, 0.5], [1.0, -1.0]], [[2.0, 1.0], [-1.0, -2.0], [0.5, 0.5]]]])
    lengths = np.array([[[2, 3, 1], [4, 2, 2]], [[1, 1, 3], [2, 4, 1]], [[3, 2, 2], [1, 1, 4]]])
    per_token = np.array([[[-0.1, -0.2, -0.3], [-0.4, -0.5, -0.6]], [[-0.7, -0.8, -0.9], [-1.0, -1.1, -1.2]],
                          [[-1.3, -1.4, -1.5], [-1.6, -1.7, -1.8]]])
    cfg, tok = _study_stubs(monkeypatch, rewards, scores, lengths, per_token)
    methods = ["pkpo_loo1", "maxpo", "grpo"]
    out = gradvar.gradient_study(torch.nn.Module(), tok, cfg, methods, prompts=p_n, repeats=r_n, seed=1, n_boot=200)

    # the lab's advantage scales, by hand; the lab works in float32, hence relative tolerances of 1e-6 below
    scale = {"pkpo_loo1": b / k, "maxpo": b / k, "grpo": 1.0}
    adv = {m: np.stack([maxpo.advantages(torch.tensor(rewards[r]), k, method=m).numpy() * scale[m]
                        for r in range(r_n)]) for m in methods}  # (R, P, B)
    h = {m: np.einsum("rpb,rpbd->rpd", adv[m], scores) for m in methods}
    for m in methods:  # g_r = sum_p h_pr / P: the repeat statistics of test_lab_independent, here with numpy
        g = h[m].sum(1) / p_n
        mean = g.mean(0)
        var = ((g - mean) ** 2).sum() / (r_n - 1)
        sq = mean @ mean - var / r_n
        loo = np.stack([np.delete(g, i, 0).mean(0) for i in range(r_n)])
        cos = np.mean([g[i] @ loo[i] / np.linalg.norm(g[i]) / np.linalg.norm(loo[i]) for i in range(r_n)])
        got = out["methods"][m]
        assert got["total_variance"] == pytest.approx(var, rel=1e-6)
        assert got["mean_sq_norm"] == pytest.approx(sq, rel=1e-6)
        assert got["relative_variance"] == (pytest.approx(var / sq, rel=1e-6) if sq > 0 else float("inf"))
        assert got["cosine_to_mean"] == pytest.approx(cos, rel=1e-6)

    def trace_cov(x: np.ndarray, y: np.ndarray) -> np.ndarray:  # per prompt, over repeats; x, y: (R, P, d)
        return np.array([sum(np.cov(x[:, p, c], y[:, p, c], ddof=1)[0, 1] for c in range(x.shape[2]))
                         for p in range(p_n)])

    e = h["pkpo_loo1"] - h["maxpo"]
    sig = scores.sum(2)
    v0p, v1p, v2p = trace_cov(h["pkpo_loo1"], h["pkpo_loo1"]), trace_cov(h["pkpo_loo1"], e), trace_cov(e, e)
    v0, v1, v2 = v0p.sum(), v1p.sum(), v2p.sum()
    fam = out["family"]
    assert (fam["v0"], fam["v1"], fam["v2"]) == pytest.approx((v0, v1, v2), rel=1e-6)
    assert fam["var_maxpo_direct"] == pytest.approx(trace_cov(h["maxpo"], h["maxpo"]).sum(), rel=1e-6)
    var1 = v0 - 2 * v1 + v2
    assert fam["lambda_star"]["value"] == pytest.approx(v1 / v2, rel=1e-6)
    assert fam["var_star_over_var1"]["value"] == pytest.approx((v0 - v1 * v1 / v2) / var1, rel=1e-6)
    assert fam["var0_over_var1"]["value"] == pytest.approx(v0 / var1, rel=1e-6)
    for name in ("lambda_star", "var_star_over_var1", "var0_over_var1"):
        assert fam[name]["lo"] <= fam[name]["hi"]
    # the intervals: percentile bootstrap over prompts, 200 resamples drawn by numpy's generator seeded with
    # derive_seed(seed, "gradvar-boot") mod 2^32 (a resample with v2 <= 0 has no lambda* and is skipped)
    from maxpo.lab.seeding import derive_seed

    # the adaptive lambda, straight from the vectors: before repeat r, the ratio of sum_{s<r} sum_p w_p <h, e> to
    # sum_{s<r} sum_p w_p |e|^2 (1 while that is 0); its variance, per prompt the trace variance over repeats of
    # h_r - lambda_r e_r, over MaxPO's (h - e), summed over prompts with the weights w
    h_max_direct = h["pkpo_loo1"] - e
    var_max_p = np.array([np.var(h_max_direct[:, p], axis=0, ddof=1).sum() for p in range(p_n)])

    def adaptive(w: np.ndarray) -> tuple[list[float], float]:
        lams, num, den = [], 0.0, 0.0
        for r in range(r_n + 1):
            lams.append(num / den if den > 0 else 1.0)
            if r < r_n:
                num += sum(w[p] * h["pkpo_loo1"][r, p] @ e[r, p] for p in range(p_n))
                den += sum(w[p] * e[r, p] @ e[r, p] for p in range(p_n))
        a = h["pkpo_loo1"] - np.array(lams[:-1])[:, None, None] * e
        v_ad = sum(w[p] * np.var(a[:, p], axis=0, ddof=1).sum() for p in range(p_n))
        return lams, v_ad / (w @ var_max_p)

    lams, ratio = adaptive(np.ones(p_n))
    ad = out["adaptive"]
    assert (ad["decay"], ad["initial"]) == (1.0, 1.0)
    assert ad["lambda_hat_sequence"] == pytest.approx(lams, rel=1e-9) and len(set(lams)) == 4
    assert ad["lambda_hat_final"]["value"] == pytest.approx(lams[-1], rel=1e-9)
    assert ad["var_adaptive_over_var1"]["value"] == pytest.approx(ratio, rel=1e-6)
    assert ad["var_adaptive_over_var_star"]["value"] == pytest.approx(
        ratio / fam["var_star_over_var1"]["value"], rel=1e-6)
    rng = np.random.default_rng(derive_seed(1, "gradvar-boot") % 2**32)  # seed 1: its bits 31 and 32 are set
    draws: dict[str, list[float]] = {"lambda_star": [], "var_star_over_var1": [], "var0_over_var1": [],
                                     "var_adaptive_over_var1": [], "var_adaptive_over_var_star": [],
                                     "lambda_hat_final": []}
    for _ in range(200):
        w = np.zeros(p_n)
        for i in rng.integers(0, p_n, size=p_n):
            w[int(i)] += 1
        a0, a1, a2 = w @ v0p, w @ v1p, w @ v2p
        if a2 <= 0:
            continue
        draws["lambda_star"].append(a1 / a2)
        draws["var_star_over_var1"].append((a0 - a1 * a1 / a2) / (a0 - 2 * a1 + a2))
        draws["var0_over_var1"].append(a0 / (a0 - 2 * a1 + a2))
        lams_w, ratio_w = adaptive(w)
        draws["var_adaptive_over_var1"].append(ratio_w)
        draws["var_adaptive_over_var_star"].append(ratio_w / draws["var_star_over_var1"][-1])
        draws["lambda_hat_final"].append(lams_w[-1])
    for name, d in draws.items():
        want = np.quantile(d, [0.025, 0.975])
        got = fam[name] if name in fam else ad[name]
        assert [got["lo"], got["hi"]] == pytest.approx(want.tolist(), rel=1e-6), name
    lam = np.linspace(-0.5, 2.0, 26)
    assert fam["curve"]["lambda"] == pytest.approx(lam.tolist())
    assert fam["curve"]["var_over_var1"] == pytest.approx(((v0 - 2 * lam * v1 + lam**2 * v2) / var1).tolist())

    dbar = adv["pkpo_loo1"].mean(2)  # (R, P)
    delta, sd = dbar.mean(0), dbar.std(0, ddof=1)
    c_star = trace_cov(h["pkpo_loo1"], sig) / trace_cov(sig, sig)
    correct = rewards >= 1.0
    logp = per_token.astype(np.float32).astype(np.float64) * lengths  # the float32 log-probabilities, summed exactly
    norms = np.linalg.norm(scores, axis=3)
    for p, row in enumerate(out["per_prompt"]):
        assert row["delta"] == pytest.approx(delta[p]) and row["sd_dbar"] == pytest.approx(sd[p])
        assert row["c_star"] == pytest.approx(c_star[p], rel=1e-6)
        assert row["correct_share"] == pytest.approx(correct[:, p].mean())
        for key, a in (("length", lengths), ("logp", logp), ("norm", norms)):
            assert row[f"{key}_correct"] == pytest.approx(a[:, p][correct[:, p]].mean(), rel=1e-12), key
            assert row[f"{key}_wrong"] == pytest.approx(a[:, p][~correct[:, p]].mean(), rel=1e-12), key
    ans = out["answers"]
    assert (ans["n_correct"], ans["n_wrong"], ans["prompts_with_both"]) == (int(correct.sum()),
                                                                            int((~correct).sum()), 2)
    for key, a in (("length", lengths), ("logp", logp), ("norm", norms)):
        assert ans[f"{key}_correct"] == pytest.approx(a[correct].mean(), rel=1e-6)
        assert ans[f"{key}_wrong"] == pytest.approx(a[~correct].mean(), rel=1e-6)
        paired = np.mean([a[:, p][~correct[:, p]].mean() - a[:, p][correct[:, p]].mean() for p in range(p_n)])
        assert ans["wrong_minus_correct"][key]["value"] == pytest.approx(paired, rel=1e-6)
    informative = [p for p in range(p_n) if delta[p] > 0 and trace_cov(sig, sig)[p] > 0]
    assert len(informative) == 2  # the rewards were chosen so that both prompts have a positive offset
    shift = out["shift"]
    assert shift["prompts"] == 2
    assert shift["c_star_over_delta_median"] == pytest.approx(np.median(c_star / delta), rel=1e-6)
    # prompt 0's offset is the same in every repeat (sd 0): not counted; prompt 1's is 0.2778 / 0.0962 > 1.5
    assert sd[0] == 0 and shift["offset_to_noise_above_1_5"] == sum(delta[p] / sd[p] > 1.5 for p in (1,)) == 1
    assert shift["c_star_over_delta_pooled"]["value"] == pytest.approx(c_star.sum() / delta.sum(), rel=1e-6)
    mixed = sum(rewards[r, p].min() < rewards[r, p].max() for r in range(r_n) for p in range(p_n))
    assert out["mixed_group_share"] == pytest.approx(mixed / (p_n * r_n))
    assert (out["prompts"], out["repeats"], out["samples_per_prompt"], out["k"], out["parameters"]) == (2, 3, 3, 2, 2)
    # the documented default: 4000 resamples for every interval (recorded, then run with 20 to stay fast)
    cfg, tok = _study_stubs(monkeypatch, rewards, scores, lengths, per_token)
    # and the family's seed is derive_seed(seed, "gradvar-boot") mod 2^32 (the other intervals use the default 0)
    asked: list[tuple[int, Any]] = []
    real_boot = gradvar.bootstrap_prompts

    def recording_boot(stat: Any, n: int, n_boot: int = -1, **kw: Any) -> Any:
        asked.append((n_boot, kw.get("seed")))
        return real_boot(stat, n, 20, **kw)

    monkeypatch.setattr(gradvar, "bootstrap_prompts", recording_boot)
    gradvar.gradient_study(torch.nn.Module(), tok, cfg, methods, prompts=p_n, repeats=r_n, seed=1)
    assert asked == [(4000, derive_seed(1, "gradvar-boot") % 2**32), (4000, None), (4000, None)]


def test_flat_gradient_is_float64_with_zeros_for_parameters_without_gradient() -> None:
    """The gradient statistics subtract nearly equal vectors: they are taken in float64. Parameters in
    model.parameters() order; one without a gradient contributes zeros of its size."""
    from maxpo.lab.gradvar import _flat_grad

    model = torch.nn.Linear(2, 1)  # weight (1, 2), then bias (1,)
    model.weight.grad = torch.tensor([[1.5, -2.0]])
    got = _flat_grad(model)
    assert got.dtype == torch.float64 and got.tolist() == [1.5, -2.0, 0.0]
    model.bias.grad = torch.tensor([3.0])
    assert _flat_grad(model).tolist() == [1.5, -2.0, 3.0]


def test_gradient_study_inputs_refused() -> None:
    """Too few repeats, prompts or curvature, a study without the family's two ends, a pair never accumulated."""
    from types import SimpleNamespace

    from maxpo.lab.gradvar import gradient_study, gradient_variance

    cfg = SimpleNamespace(rl=SimpleNamespace(samples_per_prompt=4, k=2))
    with pytest.raises(ValueError, match="gradient variance needs at least 2 repeats, got 1"):
        gradient_variance(torch.nn.Module(), None, cfg, ["maxpo"], prompts=2, repeats=1, seed=0)
    with pytest.raises(ValueError, match="gradient study needs at least 2 repeats, got 1"):
        gradient_study(torch.nn.Module(), None, cfg, ["maxpo", "pkpo_loo1"], 2, 1, 0)
    with pytest.raises(ValueError, match=r"needs methods pkpo_loo1 and maxpo; missing \['pkpo_loo1'\]"):
        gradient_study(torch.nn.Module(), None, cfg, ["maxpo", "grpo"], 2, 2, 0)
    with pytest.raises(ValueError, match=r"missing \['maxpo', 'pkpo_loo1'\]"):
        gradient_study(torch.nn.Module(), None, cfg, ["grpo"], 2, 2, 0)
    mom = PromptMoments([("a", "a")])
    mom.add({"a": torch.ones(2, 3)})
    with pytest.raises(ValueError, match="a covariance needs at least 2 repeats, got 1"):
        mom.trace_cov("a", "a")
    mom.add({"a": torch.zeros(2, 3)})
    assert mom.trace_cov("a", "a").tolist() == [1.5, 1.5]  # per prompt: 3 coordinates of variance (1 - 0)^2 / 2
    with pytest.raises(KeyError, match="pair .* was not accumulated"):
        mom.trace_cov("a", "b")
    for v2 in (0.0, -1.0):
        with pytest.raises(ValueError, match="curvature v2 must be positive"):
            family_summary(1.0, 0.5, v2)
    with pytest.raises(ValueError, match="needs at least 2 prompts, got 1"):
        bootstrap_prompts(lambda w: {"x": float(w[0])}, 1)


@pytest.mark.parametrize("reward, mixed", [("partial", 0.5), ("binary", 0.0)])
def test_gradient_variance_mixed_groups_by_reward_kind_with_two_repeats(monkeypatch: pytest.MonkeyPatch, reward: str,
                                                                        mixed: float) -> None:
    """Scores stubbed: no answer is correct; prompt 0's answers have partial credit 0, 1/2, 0, 0 and prompt 1's none.
    With partial rewards one group of two is mixed in each repeat, with binary rewards none. Two repeats (the
    fewest allowed); sampling in full precision unless asked."""
    from types import SimpleNamespace

    from maxpo.lab import gradvar
    from maxpo.lab.config import EvalConfig, LabConfig, ModelSpec, RLConfig, WarmStartConfig
    from maxpo.lab.task import TaskConfig
    from maxpo.lab.warmstart import build_policy

    cfg = LabConfig(task=TaskConfig(n_numbers=2, max_number=9, max_target=81),
                    model=ModelSpec(n_layer=1, n_head=2, d_model=16), warmstart=WarmStartConfig(steps=0),
                    rl=RLConfig(k=2, samples_per_prompt=4, max_new_tokens=4, reward=reward),
                    eval=EvalConfig(prompts=4, samples=4, ks=(1, 2)), device="cpu")
    credit = [0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    monkeypatch.setattr(gradvar, "score_batch", lambda group, texts: [
        SimpleNamespace(correct=False, partial=credit[i]) for i in range(len(texts))])
    flags: list[bool] = []
    real_sample = gradvar.sample

    def recording_sample(*args: Any) -> Any:
        flags.append(args[-1])
        return real_sample(*args)

    monkeypatch.setattr(gradvar, "sample", recording_sample)
    model, tok = build_policy(cfg, torch.device("cpu"))
    out = gradvar.gradient_variance(model, tok, cfg, ["maxpo"], prompts=2, repeats=2, seed=0)
    assert out["mixed_group_share"] == mixed and out["repeats"] == 2
    assert flags == [False, False]


def test_repeat_statistics_by_hand_at_the_edges() -> None:
    """R = 2 repeats by hand. Rows (1, 0), (0, 1): mean (1/2, 1/2), V = 1, |mean|^2 - V/R = 0 (relative variance
    infinite), each row orthogonal to the other (cosine 0). Rows (1, 0), (1, 1): V = 1/2, 5/4 - 1/4 = 1, relative
    variance 1/2, cosine 1/sqrt(2) each. Three equal rows of norm 1.2e-30 (above the 1e-30 floor of the cosine):
    cosine 1."""
    from maxpo.lab.gradvar import _repeat_statistics

    got = _repeat_statistics(torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64))
    assert got == {"mean_sq_norm": 0.0, "total_variance": 1.0, "relative_variance": float("inf"),
                   "cosine_to_mean": 0.0}
    got = _repeat_statistics(torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=torch.float64))
    assert got["total_variance"] == pytest.approx(0.5) and got["mean_sq_norm"] == pytest.approx(1.0)
    assert got["relative_variance"] == pytest.approx(0.5) and got["cosine_to_mean"] == pytest.approx(2**-0.5)
    tiny = _repeat_statistics(torch.full((3, 1), 1.2e-30, dtype=torch.float64))
    assert tiny["cosine_to_mean"] == pytest.approx(1.0)
    # below the floor each norm counts as 1e-30: three equal rows of norm 0.5e-30, whose leave-one-out mean is
    # 0.5e-30 too, give (0.5e-30 / 1e-30)^2 = 1/4 (the mean of the other rows, not their sum, is what is floored);
    # all-zero gradients give 0, not NaN
    assert _repeat_statistics(torch.full((3, 1), 0.5e-30, dtype=torch.float64))["cosine_to_mean"] == pytest.approx(0.25)
    assert _repeat_statistics(torch.zeros(3, 2, dtype=torch.float64))["cosine_to_mean"] == 0.0


def test_prompt_moments_accumulate_in_float64_and_keep_their_own_copy() -> None:
    """float32 series 2^24 and 1 (one prompt, d = 1): their float32 sum would round to 2^24; the trace variance over
    R = 2 is (2^24 - 1)^2 / 2 exactly. A float64 series changed in place after add() must not change the sums."""
    mom = PromptMoments([("a", "a")])
    mom.add({"a": torch.tensor([[2.0**24]], dtype=torch.float32)})
    mom.add({"a": torch.tensor([[1.0]], dtype=torch.float32)})
    assert mom.trace_cov("a", "a").tolist() == [(2**24 - 1) ** 2 / 2]
    mom = PromptMoments([("a", "a")])
    x = torch.tensor([[3.0, 1.0]], dtype=torch.float64)
    mom.add({"a": x})
    x.zero_()  # the caller reuses its buffer
    mom.add({"a": x})
    # rows (3, 1) and (0, 0), mean (3/2, 1/2): squared deviations 2 (9/4 + 1/4) = 5, over R - 1 = 1
    assert mom.trace_cov("a", "a").tolist() == [5.0]


def test_family_summary_with_a_curvature_below_one() -> None:
    # V(l) = 1 - l/2 + l^2/2: minimum at l = 1/4/(1/2) = 1/2, V = 1 - 1/8 = 7/8; V(1) = 1, V(0) = 1
    s = family_summary(1.0, 0.25, 0.5)
    assert s == pytest.approx({"lambda_star": 0.5, "var_star_over_var1": 0.875, "var0_over_var1": 1.0})


@pytest.mark.parametrize("n_prompts, level", [(2, 0.95), (12, 0.8)])
def test_bootstrap_over_prompts_equals_a_hand_written_resampling_loop(n_prompts: int, level: float) -> None:
    """Defaults n_boot = 4000 and seed 0 (documented): the intervals are the level's outer quantiles of the statistic
    over 4000 resamples of the prompts with replacement, drawn here by a loop of numpy's generator seeded 0, and
    the point estimate is the statistic at multiplicities 1. Two prompts are enough."""
    vals = np.array([1.0, 2.0, 3.0, 10.0, -4.0, 0.5, 7.25, -1.5, 2.75, 6.0, -3.25, 4.5])[:n_prompts]
    calls = []

    def stat(w: np.ndarray) -> dict[str, float]:
        calls.append(w.copy())
        return {"mean": float(w @ vals / w.sum()), "w0": float(w[0])}

    out = bootstrap_prompts(stat, n_prompts, level=level)
    assert len(calls) == 4001 and calls[0].tolist() == [1.0] * n_prompts
    rng = np.random.default_rng(0)
    means, w0 = [], []
    for _ in range(4000):
        counts = [0.0] * n_prompts
        for i in rng.integers(0, n_prompts, size=n_prompts):
            counts[int(i)] += 1
        means.append(sum(c * v for c, v in zip(counts, vals)) / n_prompts)
        w0.append(counts[0])
    for name, draws in (("mean", means), ("w0", w0)):
        ordered = sorted(draws)
        want = [np.quantile(ordered, q) for q in ((1 - level) / 2, (1 + level) / 2)]
        assert [out[name]["lo"], out[name]["hi"]] == pytest.approx(want, rel=1e-12), name
    assert out["mean"]["value"] == pytest.approx(vals.mean()) and out["w0"]["hi"] >= 1.0


def test_per_answer_scores_without_padding_and_without_graph() -> None:
    """Prompts of one length (no attention mask): each row is its answer's own log-probability gradient by
    autograd, and the scores carry no autograd graph back to the model's parameters."""
    torch.manual_seed(1)
    model = GPT(GPTConfig(vocab_size=12, n_layer=1, n_head=2, d_model=16, max_len=32))
    model.eval()
    b = 3
    prompts = [[1, 2, 3]] * b + [[4, 5, 3]] * b
    answers = [[6], [7, 8], [6, 6, 6]] + [[8, 8], [7], [9]]
    roll = teacher_rollout(prompts, answers, eos_id=11, pad_id=0, device=torch.device("cpu"))
    assert roll.attention_mask is None
    scores = per_sample_scores(model, roll, b)
    assert scores.shape == (6, sum(p.numel() for p in model.parameters())) and not scores.requires_grad
    logp = token_logprobs(model, roll)
    for i in range(6):
        model.zero_grad()
        (logp[i] * roll.completion_mask[i]).sum().backward(retain_graph=True)
        one = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).double()
        assert torch.allclose(scores[i], one, rtol=1e-4, atol=1e-6), i


def test_gradient_study_with_unmixed_groups_and_a_prompt_never_solved(monkeypatch: pytest.MonkeyPatch) -> None:
    """Prompt 0 is never solved (partial credit only), prompt 1 is solved by every answer in repeat 0; two of the
    four groups are mixed. Prompt 0 has no correct-answer means (None); with one prompt having both outcomes there
    is no paired wrong-minus-correct interval; the pooled correct/wrong means are over all answers."""
    from maxpo.lab import gradvar

    rewards = np.array([[[0.0, 0.5, 0.0], [1.0, 1.0, 1.0]],
                        [[0.0, 0.0, 0.0], [1.0, 0.0, 0.5]]])
    scores = np.arange(2 * 2 * 3 * 2, dtype=np.float64).reshape(2, 2, 3, 2) % 5 - 2
    lengths = np.array([[[1, 2, 3], [2, 2, 1]], [[3, 1, 1], [4, 2, 3]]])
    per_token = np.full((2, 2, 3), -0.5)
    cfg, tok = _study_stubs(monkeypatch, rewards, scores, lengths, per_token)
    out = gradvar.gradient_study(torch.nn.Module(), tok, cfg, ["pkpo_loo1", "maxpo"], prompts=2, repeats=2, seed=0,
                                 n_boot=50)
    assert out["mixed_group_share"] == 0.5
    p0, p1 = out["per_prompt"]
    assert p0["correct_share"] == 0.0 and p0["length_correct"] is None and p0["norm_correct"] is None
    assert p0["length_wrong"] == pytest.approx(lengths[:, 0].mean())
    assert p1["correct_share"] == pytest.approx(4 / 6) and p1["length_correct"] == pytest.approx((2 + 2 + 1 + 4) / 4)
    assert p1["length_wrong"] == pytest.approx((2 + 3) / 2)
    ans = out["answers"]
    assert ans["prompts_with_both"] == 1 and "wrong_minus_correct" not in ans
    assert (ans["n_correct"], ans["n_wrong"]) == (4, 8)
    assert ans["length_correct"] == pytest.approx(9 / 4) and ans["length_wrong"] == pytest.approx((6 + 5 + 5) / 8)
    # the best shift uses the prompts whose offset delta (mean loo-1 advantage, B/K-scaled) and score-sum variance
    # are positive (here both: prompt 0's partial credit gives it a positive offset too)
    import maxpo

    delta = np.mean([[float(maxpo.advantages(torch.tensor([rewards[r, p]]), 2, method="pkpo_loo1").mean()) * 1.5
                      for p in range(2)] for r in range(2)], 0)
    sig = scores.sum(2)  # (R, P, d)
    var_s = ((sig[0] - sig[1]) ** 2).sum(-1) / 2  # R = 2: the unbiased variance of two values is (x - y)^2 / 2
    informative = [p for p in range(2) if delta[p] > 0 and var_s[p] > 0]
    assert informative == [0, 1] and out["shift"]["prompts"] == 2 and "c_star_over_delta_pooled" in out["shift"]


def _prescribed_offsets_study(monkeypatch: pytest.MonkeyPatch, dbar: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """gradient_study with the stubs above and the advantages prescribed too: in repeat r, prompt p's loo-1
    advantages are dbar[r, p] + (u, -u, 0) (mean exactly dbar[r, p]) and MaxPO's the centred (u, -u, 0), with
    u = 0.25 (r + p + 1); B = 3, methods pkpo_loo1 and maxpo."""
    from maxpo.lab import gradvar

    r_n, p_n = dbar.shape
    methods = ["pkpo_loo1", "maxpo"]
    calls = itertools.count()

    def fake_advantages(rewards: torch.Tensor, k: int, method: str, scale: float) -> torch.Tensor:
        i = next(calls)
        r, m = divmod(i, len(methods))
        assert method == methods[m]
        u = 0.25 * (r + np.arange(p_n) + 1)[:, None] * np.array([[1.0, -1.0, 0.0]])
        return torch.tensor(u + (dbar[r][:, None] if method == "pkpo_loo1" else 0.0))

    rewards = np.zeros((r_n, p_n, 3))
    rewards[:, :, 0] = 1.0
    lengths, per_token = np.ones((r_n, p_n, 3), dtype=int), np.full((r_n, p_n, 3), -0.5)
    cfg, tok = _study_stubs(monkeypatch, rewards, scores, lengths, per_token)
    monkeypatch.setattr(gradvar, "scaled_advantages", fake_advantages)
    return gradvar.gradient_study(torch.nn.Module(), tok, cfg, methods, prompts=p_n, repeats=r_n, seed=0, n_boot=20)


def _c_star(dbar: np.ndarray, scores: np.ndarray) -> list[float]:
    """c* = tr Cov(h, S) / tr Var S per prompt for the prescribed advantages of _prescribed_offsets_study, with
    h = sum_j A_j S_j and numpy's covariance per coordinate (nan where Var S = 0)."""
    r_n, p_n = dbar.shape
    u = 0.25 * (np.arange(r_n)[:, None] + np.arange(p_n)[None] + 1)
    adv = dbar[:, :, None] + u[:, :, None] * np.array([1.0, -1.0, 0.0])
    h, sig = np.einsum("rpb,rpbd->rpd", adv, scores), scores.sum(2)
    d = scores.shape[-1]
    return [sum(np.cov(h[:, p, c], sig[:, p, c])[0, 1] for c in range(d)) / sum(np.var(sig[:, p, c], ddof=1)
            for c in range(d)) if np.var(sig[:, p], axis=0).sum() > 0 else float("nan") for p in range(p_n)]


# prompt p2's score sum never varies: its c* is 0/0 (nan, with numpy's warning), and the filters leave it out
@pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning")
def test_gradient_study_best_shift_filters_at_their_edges(monkeypatch: pytest.MonkeyPatch) -> None:
    """Four prompts, three repeats, offsets prescribed (dyadic, so every mean and sd below is exact):
    p0 has offset 0 in every repeat; p1 offsets (1/8, 3/8, 5/8): delta 3/8, sd 1/4, offset-to-noise exactly 1.5;
    p2 (1/2, 1, 3/2): ratio 1 / (1/2) = 2, but its score sum is the same in every repeat (Var S = 0);
    p3 (1, 2, 3): ratio 2 / 1 = 2. The best shift uses the prompts with delta > 0 and Var S > 0: p1 and p3.
    Above the cut of 1.5 (strictly; sd 0 excluded): p2 and p3."""
    dbar = np.array([[0.0, 0.125, 0.5, 1.0], [0.0, 0.375, 1.0, 2.0], [0.0, 0.625, 1.5, 3.0]])
    rng = np.random.default_rng(7)
    scores = rng.integers(-3, 4, size=(3, 4, 3, 2)).astype(np.float64)
    scores[:, 2, 2] = np.array([5.0, -2.0]) - scores[:, 2, 0] - scores[:, 2, 1]  # p2: S summed over answers is fixed
    out = _prescribed_offsets_study(monkeypatch, dbar, scores)
    rows = out["per_prompt"]
    assert [row["delta"] for row in rows] == [0.0, 0.375, 1.0, 2.0]
    assert [row["sd_dbar"] for row in rows] == [0.0, 0.25, 0.5, 1.0]
    shift = out["shift"]
    assert shift["prompts"] == 2 and shift["offset_to_noise_above_1_5"] == 2
    c_star = _c_star(dbar, scores)
    assert np.isnan(c_star[2]) and np.isnan(rows[2]["c_star"])
    assert [rows[p]["c_star"] for p in (0, 1, 3)] == pytest.approx([c_star[p] for p in (0, 1, 3)], rel=1e-9)
    assert shift["c_star_over_delta_median"] == pytest.approx(np.median([c_star[1] / 0.375, c_star[3] / 2.0]))
    assert shift["c_star_over_delta_pooled"]["value"] == pytest.approx((c_star[1] + c_star[3]) / (0.375 + 2.0))
    # with p0 and p3 only, one prompt is informative: its ratio, and no pooled interval over a single prompt
    dbar, scores = dbar[:, [0, 3]], scores[:, [0, 3]]
    out = _prescribed_offsets_study(monkeypatch, dbar, scores)
    assert out["shift"]["prompts"] == 1 and out["shift"]["offset_to_noise_above_1_5"] == 1
    assert out["shift"]["c_star_over_delta_median"] == pytest.approx(_c_star(dbar, scores)[1] / 2.0)
    assert "c_star_over_delta_pooled" not in out["shift"]


@pytest.mark.parametrize("running, grams, fires", [
    (1.0, [1.0, 1.0 + 1.5e-9, 1.0, 1.0], True),  # a lambda before a repeat off by 1.5e-9 relative (rtol 1e-9)
    (1.0, [1.0, 1.0, 1.0, 1.0 + 1.5e-9], True),  # the final lambda off by as much
    (0.0, [0.0, 1.5e-12, 0.0, 0.0], True),  # at lambda 0: off by 1.5e-12 (atol 1e-12)
    (0.0, [0.0, 0.0, 0.0, 1.5e-12], True),
    (1.0, [1.0, 1.0 + 0.5e-9, 1.0, 1.0 + 0.5e-9], False),  # within the tolerance
])
def test_gradient_study_checks_its_lambdas_against_running_lambda(monkeypatch: pytest.MonkeyPatch, running: float,
                                                                  grams: list[float], fires: bool) -> None:
    """The study computes the adaptive lambda twice, from the Gram matrices and with RunningLambda, and must refuse
    to report when the two disagree by more than rtol 1e-9 + atol 1e-12: both sides prescribed here."""
    from maxpo.lab import gradvar

    class FixedLambda:
        def __init__(self, decay: float, initial: float) -> None:
            self.lam = running

        def update_gradients(self, g_a: Any, g_b: Any) -> float:
            return self.lam

    real = gradvar.adaptive_lambdas

    def from_grams(cross: Any, sq: Any, w: Any = None, initial: float = 1.0) -> np.ndarray:
        return np.array(grams) if w is None else real(cross, sq, w, initial)

    monkeypatch.setattr(gradvar, "RunningLambda", FixedLambda)
    monkeypatch.setattr(gradvar, "adaptive_lambdas", from_grams)
    dbar = np.array([[0.125, 1.0], [0.375, 2.0], [0.625, 3.0]])
    scores = np.random.default_rng(8).integers(-3, 4, size=(3, 2, 3, 2)).astype(np.float64)
    if fires:
        with pytest.raises(RuntimeError, match="disagrees with RunningLambda"):
            _prescribed_offsets_study(monkeypatch, dbar, scores)
    else:
        assert _prescribed_offsets_study(monkeypatch, dbar, scores)["adaptive"]["lambda_hat_sequence"] == grams


def test_gradient_study_where_no_answer_is_correct(monkeypatch: pytest.MonkeyPatch) -> None:
    """Partial credit only, never a full reward: no correct-answer means anywhere (None), the wrong-answer means are
    over all answers, no prompt has both outcomes."""
    from maxpo.lab import gradvar

    rewards = np.array([[[0.0, 0.5, 0.0], [0.5, 0.0, 0.25]],
                        [[0.25, 0.0, 0.0], [0.0, 0.0, 0.5]]])
    scores = np.arange(2 * 2 * 3 * 2, dtype=np.float64).reshape(2, 2, 3, 2) % 7 - 3
    lengths = np.array([[[1, 2, 3], [2, 2, 1]], [[3, 1, 1], [4, 2, 3]]])
    cfg, tok = _study_stubs(monkeypatch, rewards, scores, lengths, np.full((2, 2, 3), -0.5))
    out = gradvar.gradient_study(torch.nn.Module(), tok, cfg, ["pkpo_loo1", "maxpo"], prompts=2, repeats=2, seed=0,
                                 n_boot=50)
    ans = out["answers"]
    assert (ans["n_correct"], ans["n_wrong"], ans["prompts_with_both"]) == (0, 12, 0)
    assert ans["length_correct"] is None and ans["length_wrong"] == pytest.approx(25 / 12)
    assert all(row["length_correct"] is None and row["correct_share"] == 0.0 for row in out["per_prompt"])


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


def test_adaptive_lambdas_and_variance_take_lists_and_refuse_bad_shapes() -> None:
    """Nested lists (integers too) are read as float64 arrays: the by-hand values above. Grams that are not
    (P, R, R), or a lambda that is not (R,), are refused with the message, not broadcast; a zero denominator
    (always so before the first repeat) gives the initial value without a division warning."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = adaptive_lambdas([[1, 2, 0], [3, -1, 4]], [[2, 1, 1], [2, 3, 1]])
        assert got.dtype == np.float64 and got == pytest.approx([1.0, 1.0, 5 / 8, 9 / 10], abs=1e-15)
        assert adaptive_lambdas([[0.0, 0.0]], [[0.0, 0.0]], initial=0.5).tolist() == [0.5, 0.5, 0.5]
    h = [[[1, 0], [0, 2], [1, 1]], [[2, 0], [0, 0], [0, 0]]]  # test_adaptive_trace_variance_by_hand's, as lists
    e = [[[1, 1], [0, 1], [2, 0]], [[0, 0], [0, 0], [0, 0]]]
    hh, he, ee = (np.einsum("prd,psd->prs", np.array(x), np.array(y)).tolist() for x, y in ((h, h), (h, e), (e, e)))
    assert adaptive_trace_variance(hh, he, ee, [1, 2, 0.5]) == pytest.approx([1.0, 4 / 3], rel=1e-14)
    square = np.ones((2, 3, 3))
    for bad in ((np.ones((2, 3, 2)), np.ones((2, 3, 2)), np.ones((2, 3, 2)), np.ones(2)),  # R x S, S != R
                (np.ones((2, 3, 2)), np.ones((2, 3, 2)), np.ones((2, 3, 2)), np.ones(3)),
                (square, square, square, np.ones(2)),  # lambda of the wrong length
                (square, square[:, :2, :2], square, np.ones(3)),  # Grams of different shapes
                (square[0], square[0], square[0], np.ones(3))):  # no prompt axis
        with pytest.raises(ValueError, match=r"must be \(P, R, R\) and lam \(R,\)"):
            adaptive_trace_variance(*bad)


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
