"""The lab's reported statistics against computations that share no code with them (issue 20).

The paired bootstrap against normal theory and against a hand-written resampling loop; the gradient-variance
statistics from prescribed gradient vectors; held-out max@k of partial rewards from stubbed sampling against a
brute force over k-subsets; the training step's ``zero_grad`` (step 2's gradient is a fresh one-step gradient).
"""
from __future__ import annotations

import itertools
import math
from fractions import Fraction
from statistics import NormalDist
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

import maxpo
from maxpo.lab.stats import paired_bootstrap_ci

torch.set_num_threads(1)


# ------------------------------------------------------------------------------------------- paired bootstrap
@pytest.mark.parametrize("level", [0.95, 0.8])
def test_bootstrap_width_matches_normal_theory_on_a_large_sample(level: float) -> None:
    """One seed, P = 3000 puzzles: the resampled mean is close to normal with sd = sd(d)/sqrt(P), so the
    percentile interval is d_bar -+ z_{(1+level)/2} sd(d)/sqrt(P) (z from the standard normal, not from numpy)."""
    rng = np.random.default_rng(7)
    p = 3000
    b = rng.random((1, p))
    d = rng.normal(0.2, 1.5, size=(1, p))
    ci = paired_bootstrap_ci(b + d, b, n_boot=4000, level=level, seed=3)
    z = NormalDist().inv_cdf((1 + level) / 2)
    sd = math.sqrt(sum((x - d.mean()) ** 2 for x in d[0].tolist()) / p) / math.sqrt(p)
    assert ci["diff"] == pytest.approx(float(d.mean()), abs=1e-12)
    assert ci["hi"] - ci["lo"] == pytest.approx(2 * z * sd, rel=0.06)
    assert (ci["lo"] + ci["hi"]) / 2 == pytest.approx(float(d.mean()), abs=0.15 * z * sd)
    assert ci["level"] == level and ci["n_boot"] == 4000


def _quantile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolation quantile of a sorted list (position q (n - 1)), written out by hand."""
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (pos - lo) * (sorted_values[hi] - sorted_values[lo])


@pytest.mark.parametrize("level", [0.9, 0.5])
def test_bootstrap_equals_a_hand_written_resampling_loop(level: float) -> None:
    """The documented scheme written out: draw S seeds then P puzzles with replacement (same generator, same
    order of draws), average a - b over the resampled (seed, puzzle) grid by explicit loops, take quantiles."""
    rng_data = np.random.default_rng(11)
    s, p, n_boot = 4, 7, 300
    a = rng_data.random((s, p)) + rng_data.normal(0, 0.3, size=(s, 1))
    b = rng_data.random((s, p))
    got = paired_bootstrap_ci(a, b, n_boot=n_boot, level=level, seed=5)
    rng = np.random.default_rng(5)
    stats = []
    for _ in range(n_boot):
        rows = [int(i) for i in rng.integers(0, s, size=s)]
        cols = [int(j) for j in rng.integers(0, p, size=p)]
        stats.append(sum(float(a[i, j] - b[i, j]) for i in rows for j in cols) / (s * p))
    stats.sort()
    assert got["lo"] == pytest.approx(_quantile(stats, (1 - level) / 2), abs=1e-12)
    assert got["hi"] == pytest.approx(_quantile(stats, (1 + level) / 2), abs=1e-12)
    assert got["diff"] == pytest.approx(sum(float(x) for x in (a - b).ravel()) / (s * p), abs=1e-12)



def test_bootstrap_defaults_are_the_documented_ones() -> None:
    ci = paired_bootstrap_ci(np.ones((2, 3)), np.zeros((2, 3)))
    assert ci == {"diff": 1.0, "lo": 1.0, "hi": 1.0, "level": 0.95, "n_boot": 4000}



def test_bootstrap_default_seed_is_zero_and_lists_are_accepted() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.random((3, 5)), rng.random((3, 5))
    assert paired_bootstrap_ci(a, b) == paired_bootstrap_ci(a.tolist(), b.tolist(), seed=0)
    assert paired_bootstrap_ci(a, b) != paired_bootstrap_ci(a, b, seed=1)


@pytest.mark.parametrize("shape, level, match", [((0, 3), 0.9, "non-empty"), ((3, 0), 0.9, "non-empty"),
                                                 ((3,), 0.9, "non-empty"), ((2, 2), 0.0, "level"),
                                                 ((2, 2), 1.0, "level"), ((2, 2), 1.5, "level"),
                                                 ((2, 2), -0.5, "level")])
def test_bootstrap_refuses_empty_samples_and_levels_outside_0_1(shape: tuple, level: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        paired_bootstrap_ci(np.zeros(shape), np.zeros(shape), level=level)

@pytest.mark.parametrize("k, n", [(0, 4), (5, 4), (-1, 3)])
def test_passk_per_puzzle_refuses_k_outside_1_to_n(k: int, n: int) -> None:
    from maxpo.lab.stats import passk_per_puzzle

    with pytest.raises(ValueError, match="1 <= k <= n"):
        passk_per_puzzle([0, 1], n, k)
    assert passk_per_puzzle([0, 1, n], n, n).tolist() == [0.0, 1.0, 1.0]  # k = n accepted: any correct answer

# ------------------------------------------------------------------------------------------- gradient variance
def _tiny_cfg(**rl: Any) -> Any:
    from maxpo.lab.config import EvalConfig, LabConfig, ModelSpec, RLConfig, WarmStartConfig
    from maxpo.lab.task import TaskConfig

    return LabConfig(task=TaskConfig(n_numbers=2, max_number=9, max_target=81),
                     model=ModelSpec(n_layer=1, n_head=2, d_model=16),
                     warmstart=WarmStartConfig(steps=0), rl=RLConfig(**{"k": 2, "samples_per_prompt": 4,
                                                                          "max_new_tokens": 6, **rl}),
                     eval=EvalConfig(prompts=4, samples=4, ks=(1, 2)), device="cpu")


def test_gradient_variance_statistics_from_prescribed_gradients(monkeypatch: pytest.MonkeyPatch) -> None:
    """The flattened gradients are replaced by prescribed vectors (R = 4 repeats, 2 methods); the statistics are
    then computed here in fractions: V = sum_r |g_r - g_bar|^2 / (R - 1), |g_bar|^2 - V/R, V / that, and the mean
    over r of cos(g_r, mean of the other R - 1)."""
    from maxpo.lab import gradvar
    from maxpo.lab.warmstart import build_policy

    vectors = {"maxpo": [[1, 2, 0], [3, -1, 2], [2, 2, 1], [0, 1, 5]],
               "grpo": [[1, 0, 0], [0, 1, 0], [4, 4, 1], [-1, 2, 2]]}
    order = iter([vectors[m][r] for r in range(4) for m in ("maxpo", "grpo")])  # repeats outer, methods inner
    monkeypatch.setattr(gradvar, "_flat_grad", lambda model: torch.tensor(next(order), dtype=torch.float64))
    cfg = _tiny_cfg()
    model, tok = build_policy(cfg, torch.device("cpu"))
    out = gradvar.gradient_variance(model, tok, cfg, ["maxpo", "grpo"], prompts=2, repeats=4, seed=0)
    for m, gs in vectors.items():
        g = [[Fraction(x) for x in v] for v in gs]
        r = len(g)
        mean = [sum(col, Fraction(0)) / r for col in zip(*g)]
        var = sum((sum((x - mu) ** 2 for x, mu in zip(v, mean)) for v in g), Fraction(0)) / (r - 1)
        sq = sum(mu * mu for mu in mean) - var / r
        cosines = []
        for i, v in enumerate(g):
            others = [sum(col, Fraction(0)) / (r - 1) for col in zip(*(w for j, w in enumerate(g) if j != i))]
            dot = sum(x * y for x, y in zip(v, others))
            cosines.append(float(dot) / math.sqrt(float(sum(x * x for x in v)) * float(sum(y * y for y in others))))
        got = out["methods"][m]
        assert got["total_variance"] == pytest.approx(float(var), rel=1e-12), m
        assert got["mean_sq_norm"] == pytest.approx(float(sq), rel=1e-12), m
        assert got["relative_variance"] == pytest.approx(float(var / sq), rel=1e-12), m
        assert got["cosine_to_mean"] == pytest.approx(sum(cosines) / r, rel=1e-12), m
    assert out["repeats"] == 4 and out["prompts"] == 2 and out["samples_per_prompt"] == 4 and out["k"] == 2


def _stub_evaluation(monkeypatch: pytest.MonkeyPatch, ev: Any, fake_sample: Any, flat: Any) -> Any:
    """In the lab's evaluation module, ``sample`` replaced by ``fake_sample`` (whose answers are single token ids)
    and the verifier by a lookup: answer id ``t`` scores ``flat[t]`` (correct when 1). Returns a tokenizer stub
    that decodes an answer to its id."""
    def fake_score(group, texts):  # noqa: ANN001, ANN202
        return [SimpleNamespace(correct=flat[int(t)] == 1, partial=float(flat[int(t)]), well_formed=True)
                for t in texts]

    monkeypatch.setattr(ev, "sample", fake_sample)
    monkeypatch.setattr(ev, "score_batch", fake_score)
    return SimpleNamespace(encode=lambda s: [1], bos_id=None, eos_id=0, pad_id=0, decode=lambda ids: str(ids[0]))


# ------------------------------------------------------------------------------------------- held-out max@k
@pytest.mark.parametrize("chunk, vocab", [(4096, None), (5, None), (4096, 2**24), (4096, 2**20)])
def test_heldout_maxk_of_partial_rewards_by_brute_force(monkeypatch: pytest.MonkeyPatch, chunk: int,
                                                        vocab: int | None) -> None:
    """Sampling and scoring are stubbed so each answer has a known partial score (1 = correct); max@k is then the
    mean over puzzles of the mean over k-subsets of the best partial score, pass@k the share of k-subsets with a
    correct answer (brute force in fractions). The partial scores are chosen so that max@k differs from pass@k."""
    from maxpo.lab import evaluate as ev

    partial = [[Fraction(1, 5), Fraction(1, 2), Fraction(1, 2), Fraction(1)],
               [Fraction(0), Fraction(3, 4), Fraction(1, 4), Fraction(1, 10)],
               [Fraction(1), Fraction(1), Fraction(2, 5), Fraction(0)]]
    flat = [x for row in partial for x in row]
    counter = itertools.count()

    sizes: list[int] = []

    def fake_sample(model, prompts, u, eos, pad, bf16):  # noqa: ANN001, ANN202
        sizes.append(len(prompts))
        answers = [[next(counter)] for _ in prompts]
        return SimpleNamespace(answers=answers, entropy=torch.ones(len(prompts)), n_tokens=2 * len(prompts))

    tok = _stub_evaluation(monkeypatch, ev, fake_sample, flat)
    puzzles = [SimpleNamespace(prompt=f"p{i}") for i in range(3)]
    model = torch.nn.Module()
    if vocab:  # a model whose config names its vocabulary: at most about 2^26 / vocab answers per sampling call
        model.cfg = SimpleNamespace(vocab_size=vocab)
    res = ev.evaluate(model, tok, puzzles, n_samples=4, ks=[1, 2, 3, 4], max_new_tokens=3, seed=0, chunk=chunk)
    # whole puzzles per call: chunk // n of them, at least one; a vocabulary of 2^24 allows 4 answers, 2^20 allows 64
    per_call = {(4096, None): 12, (5, None): 4, (4096, 2**24): 4, (4096, 2**20): 12}[(chunk, vocab)]
    assert sizes == [per_call] * (12 // per_call)
    for k in (1, 2, 3, 4):
        subsets = list(itertools.combinations(range(4), k))
        want_max = sum((sum((max(row[i] for i in s) for s in subsets), Fraction(0)) / len(subsets)
                        for row in partial), Fraction(0)) / 3
        want_pass = sum((Fraction(sum(any(row[i] == 1 for i in s) for s in subsets), len(subsets))
                         for row in partial), Fraction(0)) / 3
        assert res.maxk[k] == pytest.approx(float(want_max), abs=1e-12), k
        assert res.passk[k] == pytest.approx(float(want_pass), abs=1e-12), k
        assert abs(float(want_max) - float(want_pass)) > 0.05
    assert res.correct_counts == [1, 0, 2]
    assert res.entropy == pytest.approx(0.5) and res.mean_length == pytest.approx(2.0) and res.well_formed == 1.0


# ------------------------------------------------------------------------------------------- training step
def _grads(model: torch.nn.Module) -> list[torch.Tensor]:
    return [(p.grad if p.grad is not None else torch.zeros_like(p)).detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("updates", [1, 2])
def test_step_two_gradient_equals_a_fresh_one_step_gradient(monkeypatch: pytest.MonkeyPatch, updates: int) -> None:
    """With a zero learning rate the weights never move, so the gradient left by step 2 after step 1 ran must equal
    step 2's gradient computed on a model without any gradient; a missing zero_grad (between steps, or between
    the updates of one batch) would add step 1's gradient or double it. Scores are stubbed to distinct partial
    rewards, so every group has a non-zero advantage."""
    from maxpo.lab import train as lab_train
    from maxpo.lab.distributed import DistInfo
    from maxpo.lab.loss import advantage_scale
    from maxpo.lab.warmstart import build_policy

    def fake_score(group, texts):  # noqa: ANN001, ANN202
        return [SimpleNamespace(correct=False, partial=(i % 4) / 4 + len(t) / 100, well_formed=True)
                for i, t in enumerate(texts)]

    monkeypatch.setattr(lab_train, "score_batch", fake_score)
    cfg = _tiny_cfg(reward="partial", prompts_per_step=2, updates_per_batch=updates, max_grad_norm=0.0, lr=0.0)
    model, tok = build_policy(cfg, torch.device("cpu"))
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    scale = advantage_scale(cfg.rl.method, cfg.rl.samples_per_prompt, cfg.rl.k)

    def step(n: int) -> list[torch.Tensor]:
        lab_train._rl_step(cfg, n, model, model, None, opt, tok, scale, False, torch.device("cpu"), DistInfo())
        return _grads(model)

    first = step(1)
    chained = step(2)
    model.zero_grad(set_to_none=True)
    fresh = step(2)
    assert any(float(g.abs().max()) > 0 for g in first)
    assert any(float((a - b).abs().max()) > 1e-6 for a, b in zip(first, fresh))  # the two steps differ
    for a, b in zip(chained, fresh):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)


# ------------------------------------------------------------------------------------------- policy loss
def _hand_loss(logp: list[list[float]], old: list[list[float]], adv: list[float], mask: list[list[int]],
               denom: float, eps: float, ref: list[list[float]] | None, beta: float) -> dict[str, Any]:
    """The module docstring's per-token loss, its sums and its gradient in d/d logp, token by token in floats."""
    loss = pg_sum = kl_sum = 0.0
    clipped_tokens = 0
    grad = [[0.0] * len(row) for row in logp]
    real = sum(sum(row) for row in mask)
    for i, row in enumerate(logp):
        for t, lp in enumerate(row):
            ratio = math.exp(lp - old[i][t])
            plain = -ratio * adv[i]
            if eps > 0:
                clipped = -min(max(ratio, 1 - eps), 1 + eps) * adv[i]
                uses_clip = clipped > plain
            else:
                clipped, uses_clip = plain, False
            pg = clipped if uses_clip else plain
            dpg = 0.0 if uses_clip else plain  # d(-ratio a)/d logp = -ratio a; a clamped ratio has no gradient
            kl = dkl = 0.0
            if ref is not None and beta > 0:
                d = ref[i][t] - lp
                kl, dkl = math.exp(d) - d - 1, 1 - math.exp(d)
            if mask[i][t]:
                loss += (pg + beta * kl) / denom
                pg_sum += pg / denom
                kl_sum += kl
                clipped_tokens += uses_clip
                grad[i][t] = (dpg + beta * dkl) / denom
    return {"loss": loss, "pg": pg_sum, "kl": kl_sum / max(real, 1), "clip_frac": clipped_tokens / max(real, 1),
            "grad": grad}


_LOGP = [[-0.5, -1.0, -2.0, -0.1], [-0.3, -0.9, -3.0, -0.2]]
_OLD = [[-0.8, -0.7, -2.0, -1.5], [-0.3, -0.2, -3.5, -0.2]]  # ratios e^0.3, e^-0.3, 1, e^1.4; 1, e^-0.7, e^0.5, 1
_REF = [[-0.6, -1.5, -1.0, -0.1], [-1.3, -0.4, -2.0, -0.9]]


@pytest.mark.parametrize("eps, beta, use_ref", [(0.2, 0.3, True), (0.0, 0.0, False), (0.0, 0.5, True),
                                                (0.25, 0.0, True), (0.0, 0.0, True)])
@pytest.mark.parametrize("mask", [[[1, 1, 1, 0], [1, 1, 0, 1]], [[1, 0, 0, 0], [0, 0, 0, 0]],
                                  [[0, 0, 0, 0], [0, 0, 0, 0]]])
def test_policy_loss_against_a_token_by_token_hand_computation(eps: float, beta: float, use_ref: bool,
                                                               mask: list[list[int]]) -> None:
    from maxpo.lab.loss import policy_loss

    adv = [1.5, -0.75]
    logp = torch.tensor(_LOGP, dtype=torch.float32, requires_grad=True)
    parts = policy_loss(logp, torch.tensor(_OLD), torch.tensor(adv, dtype=torch.float64),
                        torch.tensor(mask, dtype=torch.bool), "sequence", 2.0, clip_eps=eps,
                        ref_logp=torch.tensor(_REF) if use_ref else None, kl_coef=beta)
    want = _hand_loss(_LOGP, _OLD, adv, mask, 2.0, eps, _REF if use_ref else None, beta)
    assert parts.loss.dtype == torch.float32  # the loss is in the model's dtype, whatever the advantages' dtype
    assert float(parts.loss.detach()) == pytest.approx(want["loss"], rel=1e-5, abs=1e-6)
    assert parts.pg == pytest.approx(want["pg"], rel=1e-5, abs=1e-6)
    assert parts.kl == pytest.approx(want["kl"], rel=1e-5, abs=1e-7)
    assert parts.clip_frac == pytest.approx(want["clip_frac"], abs=1e-7)
    parts.loss.backward()
    assert logp.grad is not None
    torch.testing.assert_close(logp.grad, torch.tensor(want["grad"], dtype=torch.float32), rtol=1e-5, atol=1e-6)


def test_policy_loss_defaults_neither_clip_nor_penalise() -> None:
    from maxpo.lab.loss import policy_loss

    mask = [[1, 1, 1, 1], [1, 1, 1, 1]]
    adv = [1.5, -0.75]
    parts = policy_loss(torch.tensor(_LOGP), torch.tensor(_OLD), torch.tensor(adv),
                        torch.tensor(mask, dtype=torch.bool), "token", 8.0, ref_logp=torch.tensor(_REF))
    want = _hand_loss(_LOGP, _OLD, adv, mask, 8.0, 0.0, None, 0.0)
    assert float(parts.loss) == pytest.approx(want["loss"], rel=1e-5)
    assert parts.kl == 0.0 and parts.clip_frac == 0.0


def _stub_scores_and_record_rollouts(monkeypatch: pytest.MonkeyPatch,
                                     well_formed: Any) -> tuple[Any, list[Any]]:
    """In the lab's training module, the verifier stubbed to partial rewards ((3 i) mod 5) / 4 of the i-th answer
    of a call (correct when 1, well formed when ``well_formed(i)``) and every rollout that ``sample`` returns
    recorded. Returns (the train module, the list the rollouts go to)."""
    from maxpo.lab import train as lab_train

    def fake_score(group, texts):  # noqa: ANN001, ANN202
        partial = [((i * 3) % 5) / 4 for i in range(len(texts))]
        return [SimpleNamespace(correct=p == 1.0, partial=p, well_formed=well_formed(i))
                for i, p in enumerate(partial)]

    rolls: list[Any] = []
    original_sample = lab_train.sample

    def recording_sample(*args: Any) -> Any:
        rolls.append(original_sample(*args))
        return rolls[-1]

    monkeypatch.setattr(lab_train, "score_batch", fake_score)
    monkeypatch.setattr(lab_train, "sample", recording_sample)
    return lab_train, rolls


@pytest.mark.parametrize("micro_batch, aggregation", [(0, "sequence"), (3, "sequence"), (5, "token")])
def test_training_step_gradient_and_logged_statistics_by_hand(monkeypatch: pytest.MonkeyPatch, micro_batch: int,
                                                              aggregation: str) -> None:
    """One step with a zero learning rate (ratio 1) and a KL term to a perturbed reference: the gradient left in the
    model equals the gradient of the whole batch's loss written out here (sum over answers of -A_i log pi(y_i) plus
    beta k3-KL, over G prompts or over all tokens), whatever the micro-batching; the logged loss, KL, advantage and
    reward statistics equal their definitions computed from the rollout."""
    import copy

    from maxpo.lab.distributed import DistInfo
    from maxpo.lab.loss import advantage_scale
    from maxpo.lab.sampling import token_logprobs
    from maxpo.lab.warmstart import build_policy

    lab_train, rolls = _stub_scores_and_record_rollouts(monkeypatch, well_formed=lambda i: i % 3 > 0)
    beta, g, b = 0.3, 2, 4
    cfg = _tiny_cfg(reward="partial", prompts_per_step=g, samples_per_prompt=b, max_grad_norm=0.0, lr=0.0,
                    kl_coef=beta, micro_batch=micro_batch, aggregation=aggregation)
    model, tok = build_policy(cfg, torch.device("cpu"))
    ref = copy.deepcopy(model)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    scale = advantage_scale("maxpo", b, 2)
    rec = lab_train._rl_step(cfg, 1, model, model, ref, opt, tok, scale, False, torch.device("cpu"), DistInfo())
    got = _grads(model)

    roll = rolls[0]
    n = g * b
    partial = [((i * 3) % 5) / 4 for i in range(n)]
    rewards = torch.tensor(partial, dtype=torch.float64).view(g, b)
    adv = (maxpo.advantages(rewards, 2) * (b / 2)).reshape(-1)
    mask = roll.completion_mask
    tokens = float(mask.sum())
    denom = float(g) if aggregation == "sequence" else tokens
    model.zero_grad(set_to_none=True)
    logp = token_logprobs(model, roll)
    with torch.no_grad():
        ref_logp = token_logprobs(ref, roll)
    d = ref_logp - logp
    kl = torch.exp(d) - d - 1
    loss = ((-adv.float()[:, None] * logp + beta * kl) * mask).sum() / denom
    loss.backward()
    for a, w in zip(got, _grads(model)):
        torch.testing.assert_close(a, w, rtol=1e-4, atol=1e-6)
    want_norm = math.sqrt(sum(float((w.double() ** 2).sum()) for w in _grads(model)))
    assert rec["grad_norm"] == pytest.approx(want_norm, rel=1e-4)
    # the logged loss is the loss' value; the ratio is 1: sum over real tokens of (-A_i + beta KL) / denom
    value = float(((-adv.float()[:, None] + beta * kl.detach()) * mask).sum()) / denom
    assert rec["loss"] == pytest.approx(value, rel=1e-4, abs=1e-7)
    assert rec["kl"] == pytest.approx(float((kl.detach() * mask).sum()) / tokens, rel=1e-4)
    assert rec["clip_frac"] == 0.0 and rec["grad_clipped"] == 0.0
    assert rec["reward"] == pytest.approx(sum(partial) / n) and rec["partial_mean"] == pytest.approx(sum(partial) / n)
    assert rec["pass_rate"] == pytest.approx(sum(p == 1.0 for p in partial) / n)
    assert rec["well_formed"] == pytest.approx(sum(i % 3 > 0 for i in range(n)) / n)
    correct = [[partial[r * b + j] == 1.0 for j in range(b)] for r in range(g)]
    assert rec["mixed_groups"] == pytest.approx(sum(0 < sum(c) < b for c in correct) / g)
    assert rec["adv_abs_mean"] == pytest.approx(float(adv.abs().sum()) / n, rel=1e-6)
    assert rec["adv_rms"] == pytest.approx(math.sqrt(float((adv ** 2).sum()) / n), rel=1e-6)
    assert rec["tokens"] == int(tokens) and rec["mean_length"] == pytest.approx(tokens / n)
    assert rec["samples"] == n and rec["step"] == 1 and rec["kind"] == "train"


def test_heldout_curve_ks_and_bad_ks() -> None:
    from maxpo.lab import evaluate as ev

    # powers of two up to n, then n itself when it is not one (by hand)
    assert ev.passk_curve_ks(1) == [1] and ev.passk_curve_ks(8) == [1, 2, 4, 8]
    assert ev.passk_curve_ks(12) == [1, 2, 4, 8, 12] and ev.passk_curve_ks(0) == []
    assert ev.passk_curve_ks(3) == [1, 2, 3]
    tok = SimpleNamespace(encode=lambda s: [1], bos_id=None, eos_id=0, pad_id=0, decode=lambda ids: "")
    for bad in ([0], [5], [1, 5]):
        with pytest.raises(ValueError, match=r"eval k values .* need 1 <= k <= n_samples=4"):
            ev.evaluate(torch.nn.Module(), tok, [SimpleNamespace(prompt="p")], n_samples=4, ks=bad,
                        max_new_tokens=2, seed=0)


def test_heldout_prompt_encoding_puts_bos_first() -> None:
    from maxpo.lab.evaluate import encode_prompt

    puzzle = SimpleNamespace(prompt="ab")
    assert encode_prompt(SimpleNamespace(encode=lambda s: [7, 8], bos_id=None), puzzle) == [7, 8]
    assert encode_prompt(SimpleNamespace(encode=lambda s: [7, 8], bos_id=3), puzzle) == [3, 7, 8]
    assert encode_prompt(SimpleNamespace(encode=lambda s: [7, 8], bos_id=0), puzzle) == [0, 7, 8]


def test_advantage_scale_refuses_unknown_and_unclassified_methods(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from maxpo.lab.loss import advantage_scale

    with pytest.raises(ValueError, match="unknown advantage method 'nope'"):
        advantage_scale("nope", 4, 2)
    monkeypatch.setitem(maxpo.METHODS, "new_method", dataclasses.replace(maxpo.METHODS["rloo"], name="new_method"))
    with pytest.raises(ValueError, match="method 'new_method' has no loss scale"):
        advantage_scale("new_method", 4, 2)
    assert advantage_scale("maxpo", 8, 2) == 4.0 and advantage_scale("maxrl", 8, 2) == 8.0  # B/K, B (by hand)
    assert advantage_scale("grpo", 8, 2) == 1.0


@pytest.mark.parametrize("aggregation, denom, match", [("mean", 1.0, "aggregation must be 'sequence' or 'token'"),
                                                        ("sequence", 0.0, "normaliser must be positive"),
                                                        ("token", -2.0, "normaliser must be positive")])
def test_policy_loss_refuses_bad_aggregation_and_normaliser(aggregation: str, denom: float, match: str) -> None:
    from maxpo.lab.loss import policy_loss

    t = torch.zeros(1, 2)
    with pytest.raises(ValueError, match=match):
        policy_loss(t, t, torch.zeros(1), torch.ones(1, 2, dtype=torch.bool), aggregation, denom)


# ------------------------------------------------------------------------------------------- held-out: the rest
_PARTIAL = [[Fraction(1, 5), Fraction(1, 2), Fraction(1, 2), Fraction(1)],
            [Fraction(0), Fraction(3, 4), Fraction(1, 4), Fraction(1, 10)],
            [Fraction(1), Fraction(1), Fraction(2, 5), Fraction(0)]]


def _heldout_stubs(monkeypatch: pytest.MonkeyPatch, partial: list[list[Fraction]],
                   entropy: list[float] | None = None, tokens_per_answer: int = 2) -> tuple[Any, Any, list, list]:
    """evaluate's sampling and scoring stubbed: answer i (in puzzle order) has partial score ``flat[i]`` (1 = correct),
    entropy ``entropy[i]`` (float32, as the sampler gives it) and ``tokens_per_answer`` tokens. Returns the module,
    a tokenizer, the puzzles and the list of sampling calls (their sizes and bf16 flags)."""
    from maxpo.lab import evaluate as ev

    flat = [x for row in partial for x in row]
    ent = entropy if entropy is not None else [1.0] * len(flat)
    counter = itertools.count()
    calls: list[tuple[int, bool]] = []

    def fake_sample(model, prompts, u, eos, pad, bf16):  # noqa: ANN001, ANN202
        calls.append((len(prompts), bf16))
        ids = [next(counter) for _ in prompts]
        return SimpleNamespace(answers=[[i] for i in ids], entropy=torch.tensor([ent[i] for i in ids],
                                                                                dtype=torch.float32),
                               n_tokens=tokens_per_answer * len(prompts))

    tok = _stub_evaluation(monkeypatch, ev, fake_sample, flat)
    return ev, tok, [SimpleNamespace(prompt=f"p{i}") for i in range(len(partial))], calls


def _brute_force_heldout(partial: list[list[Fraction]], k: int) -> tuple[Fraction, Fraction]:
    """(max@k, pass@k) averaged over puzzles, by enumerating every k-subset of each puzzle's answers."""
    n = len(partial[0])
    subsets = list(itertools.combinations(range(n), k))
    want_max = sum((sum((max(row[i] for i in s) for s in subsets), Fraction(0)) / len(subsets)
                    for row in partial), Fraction(0)) / len(partial)
    want_pass = sum((Fraction(sum(any(row[i] == 1 for i in s) for s in subsets), len(subsets))
                     for row in partial), Fraction(0)) / len(partial)
    return want_max, want_pass


def test_heldout_result_to_dict_names_every_metric() -> None:
    from maxpo.lab.evaluate import EvalResult

    res = EvalResult(passk={1: 0.25, 4: 0.5}, maxk={1: 0.375, 4: 0.75}, entropy=1.5, well_formed=0.875,
                     mean_length=3.0, n_prompts=2, n_samples=4, correct_counts=[1, 2])
    assert res.to_dict() == {"pass@1": 0.25, "pass@4": 0.5, "max@1": 0.375, "max@4": 0.75, "entropy": 1.5,
                             "well_formed": 0.875, "mean_length": 3.0, "n_prompts": 2, "n_samples": 4,
                             "correct_counts": [1, 2]}


def test_heldout_vocabulary_is_read_from_the_lab_and_hugging_face_configs() -> None:
    from maxpo.lab.evaluate import _vocab_size

    lab, hf, neither, no_field = torch.nn.Module(), torch.nn.Module(), torch.nn.Module(), torch.nn.Module()
    lab.cfg = SimpleNamespace(vocab_size=11)
    hf.model = SimpleNamespace(config=SimpleNamespace(vocab_size=13))
    no_field.cfg = SimpleNamespace(d_model=16)  # a config without a vocabulary: not an error, just unknown
    assert _vocab_size(lab) == 11 and _vocab_size(hf) == 13
    assert _vocab_size(neither) is None and _vocab_size(no_field) is None


@pytest.mark.parametrize("n_puzzles, chunk, vocab, sizes", [
    (4097, None, None, [4096, 1]),  # the default: 4096 answers per sampling call
    (3, 2, None, [4, 4, 4]),  # a chunk smaller than one puzzle's answers: still one whole puzzle per call
    (3, None, 2**22, [12]),  # 2^26 / 2^22 = 16 answers allowed: all 3 puzzles of 4 answers in one call
    (3, None, 2**23, [8, 4]),  # 2^26 / 2^23 = 8 answers: 2 puzzles per call
])
def test_heldout_sampling_call_sizes(monkeypatch: pytest.MonkeyPatch, n_puzzles: int, chunk: int | None,
                                     vocab: int | None, sizes: list[int]) -> None:
    """Sizes of the sampling calls (answers per call, whole puzzles only), by hand from the documented bounds."""
    n_samples = 1 if n_puzzles > 3 else 4
    rows = [[Fraction(i % 2)] * n_samples for i in range(n_puzzles)]
    ev, tok, puzzles, calls = _heldout_stubs(monkeypatch, rows)
    model = torch.nn.Module()
    if vocab:
        model.cfg = SimpleNamespace(vocab_size=vocab)
    kwargs = {} if chunk is None else {"chunk": chunk}
    res = ev.evaluate(model, tok, puzzles, n_samples=n_samples, ks=[1], max_new_tokens=2, seed=0, **kwargs)
    assert [c[0] for c in calls] == sizes
    assert not any(c[1] for c in calls)  # bf16 is off unless asked for
    assert res.passk[1] == pytest.approx(float(Fraction(n_puzzles // 2, n_puzzles)), abs=1e-12)


def test_heldout_entropy_is_summed_in_float64_and_divided_by_the_token_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """Entropies 2^24 and 1 (float32): their float32 sum rounds to 2^24, the exact one is 2^24 + 1; one answer of
    one token each, so the per-token entropy is (2^24 + 1) / 2; a single one-token answer: its own entropy."""
    ev, tok, puzzles, _ = _heldout_stubs(monkeypatch, [[Fraction(1), Fraction(0)]], entropy=[2.0**24, 1.0],
                                         tokens_per_answer=1)
    res = ev.evaluate(torch.nn.Module(), tok, puzzles, n_samples=2, ks=[1], max_new_tokens=2, seed=0)
    assert res.entropy == (2**24 + 1) / 2 and res.mean_length == 1.0
    ev, tok, puzzles, _ = _heldout_stubs(monkeypatch, [[Fraction(1)]], entropy=[0.75], tokens_per_answer=1)
    res = ev.evaluate(torch.nn.Module(), tok, puzzles, n_samples=1, ks=[1], max_new_tokens=2, seed=0)
    assert res.entropy == 0.75


def test_heldout_sums_over_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two processes simulated in turn: rank 1 (the last puzzle) records what it all-reduces; rank 0 (the first
    two) gets those added by its all-reduce. Rank 0's result must be the whole set's, by brute force."""
    from maxpo.lab.distributed import DistInfo

    puzzles = [SimpleNamespace(prompt=f"p{i}") for i in range(3)]
    other: list[torch.Tensor] = []
    # rank 1 samples the answers of puzzle 2 only (the stub numbers answers from 0 in sampling order)
    ev2, tok2, _, _ = _heldout_stubs(monkeypatch, [_PARTIAL[2]])
    monkeypatch.setattr(ev2, "all_reduce_sum", lambda x, dist: other.append(x.clone()) or x)
    ev2.evaluate(torch.nn.Module(), tok2, puzzles, n_samples=4, ks=[1, 2, 4], max_new_tokens=2, seed=0,
                 dist=DistInfo(rank=1, world=2))
    assert len(other) == 2
    received = iter(other)
    ev, tok, _, _ = _heldout_stubs(monkeypatch, _PARTIAL[:2])
    monkeypatch.setattr(ev, "all_reduce_sum", lambda x, dist: x + next(received))
    res = ev.evaluate(torch.nn.Module(), tok, puzzles, n_samples=4, ks=[1, 2, 4], max_new_tokens=2, seed=0,
                      dist=DistInfo(rank=0, world=2))
    for k in (1, 2, 4):
        want_max, want_pass = _brute_force_heldout(_PARTIAL, k)
        assert res.maxk[k] == pytest.approx(float(want_max), abs=1e-12), k
        assert res.passk[k] == pytest.approx(float(want_pass), abs=1e-12), k
    assert res.correct_counts == [1, 0, 2] and res.n_prompts == 3
    assert res.entropy == pytest.approx(0.5) and res.mean_length == 2.0 and res.well_formed == 1.0


def test_heldout_process_without_puzzles_contributes_zeros(monkeypatch: pytest.MonkeyPatch) -> None:
    """One puzzle, two processes: rank 1 has none, samples nothing and adds zeros to every sum."""
    from maxpo.lab.distributed import DistInfo

    ev, tok, puzzles, calls = _heldout_stubs(monkeypatch, [[Fraction(1), Fraction(1, 2)]])
    monkeypatch.setattr(ev, "all_reduce_sum", lambda x, dist: x)
    res = ev.evaluate(torch.nn.Module(), tok, puzzles, n_samples=2, ks=[1, 2], max_new_tokens=2, seed=0,
                      dist=DistInfo(rank=1, world=2))
    assert calls == []
    assert res.passk == {1: 0.0, 2: 0.0} and res.maxk == {1: 0.0, 2: 0.0} and res.correct_counts == [0]
    assert res.entropy == 0.0 and res.mean_length == 0.0 and res.well_formed == 0.0


def test_policy_loss_statistics_are_read_without_autograd_warnings() -> None:
    """The logged statistics are plain floats read from detached tensors: converting a tensor that requires grad to
    a float makes torch warn, once per step, in every training log. Clipping and KL both on, warnings as errors."""
    import warnings

    from maxpo.lab.loss import policy_loss

    logp = torch.tensor([[-0.5, -1.0], [-0.2, -2.0]], requires_grad=True)
    old = torch.tensor([[-0.7, -0.9], [-0.2, -1.5]])
    mask = torch.tensor([[True, True], [True, False]])
    always = torch.is_warn_always_enabled()
    torch.set_warn_always(True)  # torch gives this warning once per process; an earlier test may have had it
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            parts = policy_loss(logp, old, torch.tensor([1.0, -1.0]), mask, "token", 3.0, clip_eps=0.1,
                                ref_logp=old.clone(), kl_coef=0.5)
    finally:
        torch.set_warn_always(always)
    assert isinstance(parts.pg, float) and isinstance(parts.kl, float) and parts.kl > 0 and parts.clip_frac > 0


# ------------------------------------------------------------------------------------------- training step: the rest
def _step_setup(monkeypatch: pytest.MonkeyPatch, **rl: Any) -> tuple[Any, Any, Any, Any, list]:
    """A tiny policy and config; scores stubbed (:func:`_stub_scores_and_record_rollouts`, every answer well
    formed); every rollout recorded. Returns (the train module, cfg, model, tokenizer, rollouts)."""
    from maxpo.lab.warmstart import build_policy

    lab_train, rolls = _stub_scores_and_record_rollouts(monkeypatch, well_formed=lambda i: True)
    cfg = _tiny_cfg(**{"reward": "partial", "max_grad_norm": 0.0, "lr": 0.0, **rl})
    model, tok = build_policy(cfg, torch.device("cpu"))
    return lab_train, cfg, model, tok, rolls


@pytest.mark.parametrize("aggregation", ["sequence", "token"])
def test_training_step_on_one_of_two_processes(monkeypatch: pytest.MonkeyPatch, aggregation: str) -> None:
    """Rank 0 of 2 (G = 2: it has prompt 0), with an all-reduce stubbed as 'the other process saw the same sums'
    (x -> 2x). DDP averages gradients over the 2 processes, so the local loss is divided by G / 2 prompts
    (sequence) or by half the global token count (token): the gradient is that of sum_i -A_i log pi(y_i) over the
    local answers' tokens divided by 1 or by the local token count. Logged means are the local ones; tokens the
    global count."""
    from maxpo.lab.distributed import DistInfo
    from maxpo.lab.loss import advantage_scale
    from maxpo.lab.sampling import token_logprobs

    lab_train, cfg, model, tok, rolls = _step_setup(monkeypatch, prompts_per_step=2, samples_per_prompt=4,
                                                    aggregation=aggregation)
    monkeypatch.setattr(lab_train, "all_reduce_sum", lambda x, dist: 2 * x)
    used: list[torch.Tensor] = []
    real_scaled = lab_train.scaled_advantages

    def recording_scaled(*args: Any) -> torch.Tensor:
        used.append(real_scaled(*args))
        return used[-1]

    monkeypatch.setattr(lab_train, "scaled_advantages", recording_scaled)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    rec = lab_train._rl_step(cfg, 1, model, model, None, opt, tok, advantage_scale("maxpo", 4, 2), False,
                             torch.device("cpu"), DistInfo(rank=0, world=2))
    got = _grads(model)
    roll = rolls[0]
    assert len(roll.answers) == 4  # one prompt's group on this process
    partial = [0.0, 0.75, 0.25, 1.0]  # ((3 i) mod 5) / 4
    adv = maxpo.advantages(torch.tensor([partial], dtype=torch.float64), 2).reshape(-1) * 2.0  # B/K = 2
    mask = roll.completion_mask
    local_tokens = float(mask.sum())
    denom = 1.0 if aggregation == "sequence" else local_tokens
    model.zero_grad(set_to_none=True)
    loss = ((-adv.float()[:, None] * token_logprobs(model, roll)) * mask).sum() / denom
    loss.backward()
    for a, w in zip(got, _grads(model)):
        torch.testing.assert_close(a, w, rtol=1e-4, atol=1e-6)
    assert rec["reward"] == pytest.approx(sum(partial) / 4) and rec["partial_mean"] == pytest.approx(sum(partial) / 4)
    assert rec["tokens"] == 2 * int(local_tokens) and rec["mean_length"] == pytest.approx(local_tokens / 4)
    assert rec["entropy"] == pytest.approx(float(roll.entropy.double().sum()) / local_tokens, rel=1e-6)
    assert rec["samples"] == 8 and rec["pass_rate"] == pytest.approx(1 / 4)
    assert rec["mixed_groups"] == 1.0  # its one group has 1 correct answer of 4, and so has the other process's
    # the RMS of the advantages the step used, their squares summed exactly (the float32 values are exact fractions)
    exact = sum((Fraction(float(a)) ** 2 for a in used[0].reshape(-1).tolist()), Fraction(0))
    assert rec["adv_rms"] == pytest.approx(math.sqrt(exact / 4), rel=1e-15)


def test_training_step_times_rates_and_a_one_token_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """The clock stubbed to read 10, 11.5, 13, 16, 20 s at the step's five marks: sampling 1.5 s, rewards 1.5 s,
    advantages 3 s, update 4 s, step 10 s; rates per step second. One prompt, one answer of one token, scored
    correct with partial credit 1/4 under binary rewards: the per-token entropy is that token's entropy, the KL
    that token's, the reward the pass rate, and the group (all correct) is not mixed."""
    import copy

    from maxpo.lab.distributed import DistInfo
    from maxpo.lab.sampling import token_logprobs

    lab_train, cfg, model, tok, rolls = _step_setup(monkeypatch, method="dr_grpo", k=1, prompts_per_step=1,
                                                    samples_per_prompt=1, max_new_tokens=1, kl_coef=0.5,
                                                    reward="binary")
    ref = copy.deepcopy(model)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    monkeypatch.setattr(lab_train, "time", SimpleNamespace(perf_counter=iter([10.0, 11.5, 13.0, 16.0, 20.0]).__next__))
    right = SimpleNamespace(correct=True, partial=0.25, well_formed=True)
    monkeypatch.setattr(lab_train, "score_batch", lambda group, texts: [right] * len(texts))
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    rec = lab_train._rl_step(cfg, 1, model, model, ref, opt, tok, 1.0, False, torch.device("cpu"), DistInfo())
    assert (rec["t_sample"], rec["t_reward"], rec["t_adv"], rec["t_update"], rec["t_step"]) == (1.5, 1.5, 3.0, 4.0,
                                                                                                   10.0)
    assert rec["tokens"] == 1 and rec["samples"] == 1
    assert rec["pass_rate"] == 1.0 and rec["mixed_groups"] == 0.0  # an all-correct group is not mixed
    assert rec["reward"] == 1.0 and rec["partial_mean"] == 0.25  # binary rewards: the reward is the pass rate
    assert rec["samples_per_s"] == 0.1 and rec["tokens_per_s"] == 0.1
    assert rec["entropy"] == pytest.approx(float(rolls[0].entropy.double().sum()), rel=1e-6)
    assert float(rolls[0].entropy.sum()) > 0
    with torch.no_grad():  # the one token's k3 estimate of the KL to the reference
        d = float((token_logprobs(ref, rolls[0]) - token_logprobs(model, rolls[0]))[rolls[0].completion_mask])
    assert rec["kl"] == pytest.approx(math.exp(d) - d - 1, rel=1e-4) and rec["kl"] > 1e-6


def test_training_step_updates_and_micro_batches_aggregate_what_the_loss_reports(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two updates per batch, three micro-batches, SGD with lr 5, PPO clipping, a KL term and gradient clipping
    to a tiny norm. The model runs inside a stand-in for DistributedDataParallel that records which forward passes
    ran under no_sync: all micro-batches but the last of each update (one gradient all-reduce per update). What
    policy_loss returned, the pre-clipping gradient norms (computed here) and the gradients each optimizer step saw
    are recorded; the step's log must be their averages (loss per update; KL and clip fraction per token and per
    update; norms per update), the weights must have moved by -lr times the sum of the clipped gradients, and the
    logged statistics must be read without autograd warnings."""
    import contextlib
    import copy
    import warnings

    from torch.nn.parallel import DistributedDataParallel

    from maxpo.lab.distributed import DistInfo
    from maxpo.lab.loss import advantage_scale

    lab_train, cfg, model, tok, rolls = _step_setup(monkeypatch, prompts_per_step=2, samples_per_prompt=4,
                                                    updates_per_batch=2, micro_batch=3, clip_eps=1e-3,
                                                    kl_coef=0.3, max_grad_norm=1e-3, lr=5.0)
    ref = copy.deepcopy(model)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))

    class RecordingDDP(DistributedDataParallel):
        def __init__(self, module: torch.nn.Module) -> None:  # no process group: only the no_sync bookkeeping
            torch.nn.Module.__init__(self)
            self.module = module
            self.deferred = False
            self.forwards: list[bool] = []

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            self.forwards.append(self.deferred)
            return self.module(*args, **kwargs)

        @contextlib.contextmanager
        def no_sync(self) -> Any:
            self.deferred = True
            try:
                yield
            finally:
                self.deferred = False

    ddp = RecordingDDP(model)
    losses: list[tuple[float, float, float, float]] = []  # (loss, kl, clip_frac, real tokens) per micro-batch
    real_policy_loss = lab_train.policy_loss

    def recording_policy_loss(logp, old, adv, mask, *args: Any) -> Any:  # noqa: ANN001
        parts = real_policy_loss(logp, old, adv, mask, *args)
        losses.append((float(parts.loss.detach()), parts.kl, parts.clip_frac, float(mask.sum())))
        return parts

    norms: list[float] = []
    real_clip = lab_train.clip_gradients

    def recording_clip(m: torch.nn.Module, max_norm: float) -> Any:
        norms.append(math.sqrt(sum(float((p.grad.double() ** 2).sum()) for p in m.parameters()
                                   if p.grad is not None)))
        return real_clip(m, max_norm)

    monkeypatch.setattr(lab_train, "policy_loss", recording_policy_loss)
    monkeypatch.setattr(lab_train, "clip_gradients", recording_clip)
    opt = torch.optim.SGD(model.parameters(), lr=5.0)
    stepped: list[list[torch.Tensor]] = []
    real_step = opt.step

    def recording_step() -> None:
        stepped.append(_grads(model))
        real_step()

    monkeypatch.setattr(opt, "step", recording_step)
    w0 = [p.detach().clone() for p in model.parameters()]
    always = torch.is_warn_always_enabled()
    torch.set_warn_always(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            rec = lab_train._rl_step(cfg, 1, ddp, model, ref, opt, tok, advantage_scale("maxpo", 4, 2), False,
                                     torch.device("cpu"), DistInfo())
    finally:
        torch.set_warn_always(always)
    assert ddp.forwards == [True, True, False] * 2  # pieces [0, 3), [3, 6), [6, 8), twice
    assert len(losses) == 6 and len(norms) == 2 and len(stepped) == 2
    tokens = float(rolls[0].completion_mask.sum())
    assert sum(t for *_, t in losses) == 2 * tokens
    assert rec["loss"] == pytest.approx(sum(v[0] for v in losses) / 2, rel=1e-6)
    assert rec["kl"] == pytest.approx(sum(v[1] * v[3] for v in losses) / tokens / 2, rel=1e-6)
    assert rec["clip_frac"] == pytest.approx(sum(v[2] * v[3] for v in losses) / tokens / 2, rel=1e-6)
    assert rec["clip_frac"] > 0 and rec["kl"] > 0  # the second update's ratios moved past 1 +- 0.001
    assert rec["grad_norm"] == pytest.approx(sum(norms) / 2, rel=1e-6) and min(norms) > 1e-3
    assert rec["grad_clipped"] == 1.0
    for p, w, g1, g2 in zip(model.parameters(), w0, *stepped):
        torch.testing.assert_close(p.detach(), w - 5.0 * (g1 + g2), rtol=1e-5, atol=1e-7)
    assert any(float((p.detach() - w).abs().max()) > 0 for p, w in zip(model.parameters(), w0))
