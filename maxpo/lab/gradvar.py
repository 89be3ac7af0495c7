r"""Variance of each method's policy gradient inside the model, at a fixed set of weights.

The paper's central claim is that its estimator lowers the variance of the
gradient. Here it is measured in the lab's language model: for fixed weights and
a fixed set of G training puzzles, draw R independent groups of B answers per
puzzle; for each group compute every method's gradient of the sequence loss
(:func:`maxpo.lab.loss.policy_loss`, advantages scaled as in training), flattened
over all parameters, :math:`g_r \in \mathbb R^d`. All methods see the same answers
(a paired comparison). Reported per method:

* ``total_variance``: :math:`V = \frac1{R-1}\sum_r \|g_r - \bar g\|^2`, the trace of the
  gradient's covariance (unbiased);
* ``mean_sq_norm``: :math:`\|\bar g\|^2 - V/R`, an unbiased estimate of the squared
  norm of the expected gradient (:math:`\|\bar g\|^2` itself is inflated by the noise);
* ``relative_variance``: ``total_variance / mean_sq_norm``, scale-free (methods
  whose advantages differ by a constant factor have the same value), the inverse
  of a signal-to-noise ratio;
* ``cosine_to_mean``: the average over r of :math:`\cos(g_r, \bar g_{-r})`, each
  gradient against the mean of the *other* R - 1 (so its own noise does not
  inflate it): how well one step's gradient points where the average does.

Different methods target different objectives (pass@1, pass@K), so their mean
gradients differ; the scale-free numbers are the ones to compare.

:func:`gradient_study` measures more from the same sampled groups, through each
answer's score function :math:`S_i = \nabla_\theta \log \pi(y_i)` (computed per
answer with ``torch.func``; the gradient of any method is then
:math:`\frac1G\sum_i A_i S_i`, which the tests check against autograd of the loss).
Per prompt :math:`p` and repeat :math:`r` write :math:`h^{m}_{pr} = \sum_{i \in p} A^m_i S_i`
and :math:`\Sigma_{pr} = \sum_{i \in p} S_i`. Groups of different prompts are
independent, so every trace of a covariance is a sum of per-prompt terms, each
estimated without bias over the R repeats (:class:`PromptMoments`), and intervals
come from a bootstrap over prompts, paired across estimators (:func:`bootstrap_prompts`):

* the **loo-1/MaxPO family** :math:`A(\lambda) = A_{\text{loo-1}} - \lambda D`,
  :math:`D = A_{\text{loo-1}} - A_{\text{MaxPO}}`: with :math:`g_0 = h^{\text{loo-1}}` and
  :math:`e = g_0 - h^{\text{MaxPO}}`, :math:`\operatorname{tr}\operatorname{Var} g(\lambda)
  = v_0 - 2\lambda v_1 + \lambda^2 v_2` with :math:`v_0 = \operatorname{tr}\operatorname{Var} g_0`,
  :math:`v_1 = \operatorname{tr}\operatorname{Cov}(g_0, e)`, :math:`v_2 = \operatorname{tr}\operatorname{Var} e`;
  :math:`\lambda^* = v_1 / v_2` (:func:`family_summary`);
* the **best constant shift** of loo-1 per prompt, :math:`A = A_{\text{loo-1}} - c`:
  :math:`c^*_p = \operatorname{tr}\operatorname{Cov}(h^{\text{loo-1}}_p, \Sigma_p)
  / \operatorname{tr}\operatorname{Var}\Sigma_p`,
  against loo-1's offset :math:`\delta_p`, estimated by the average over repeats of
  the group's mean loo-1 advantage (unbiased: MaxPO's advantages sum to zero and
  :math:`E[A_{\text{loo-1},i}] = \delta`);
* per answer, correct against wrong: the score norm :math:`\|S_i\|`, the answer
  length (tokens, EOS included) and the sequence log-probability;
* the **adaptive choice of** :math:`\lambda`, out of sample: the R repeats are taken
  in order as R successive batches, and repeat r uses
  :math:`\hat\lambda_r = \sum_{s<r}\sum_p \langle h^{\text{loo-1}}_{ps}, e_{ps}\rangle
  / \sum_{s<r}\sum_p \|e_{ps}\|^2` (:class:`maxpo.family.RunningLambda`, decay 1; repeat 0
  uses :math:`\lambda = 1`, MaxPO). :math:`\hat\lambda_r` depends on earlier repeats only, so
  given it :math:`a_{pr} = h^{\text{loo-1}}_{pr} - \hat\lambda_r e_{pr}` has the mean of every
  family member, and the centred :math:`a_{pr}` are uncorrelated across r (a martingale
  difference sequence) and across prompts. The usual
  :math:`\frac1{R-1}\sum_r \|a_{pr} - \bar a_p\|^2` is then unbiased for
  :math:`\frac1R\sum_r E\,\operatorname{tr}\operatorname{Var}(a_{pr} \mid \hat\lambda_r)`,
  the adaptive gradient's variance averaged over the R steps
  (:func:`adaptive_trace_variance`); in expectation it is at least
  :math:`V(\lambda^*)`. The bootstrap over prompts recomputes the whole
  :math:`\hat\lambda` sequence in each resample (:func:`adaptive_lambdas`), from
  per-prompt Gram matrices over repeats, so the interval includes the noise of the
  choice of λ, paired with the family's intervals.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from maxpo.family import RunningLambda, VarianceQuadratic
from maxpo.lab.config import LabConfig
from maxpo.lab.evaluate import encode_prompt
from maxpo.lab.loss import advantage_scale, policy_loss, scaled_advantages
from maxpo.lab.sampling import sample, token_logprobs
from maxpo.lab.seeding import derive_seed, uniforms
from maxpo.lab.task import sample_puzzles, score_batch
from maxpo.lab.tokenizer import LabTokenizer

__all__ = ["gradient_variance", "gradient_study", "PromptMoments", "family_summary", "bootstrap_prompts",
           "per_sample_scores", "adaptive_lambdas", "adaptive_trace_variance", "OFFSET_TO_NOISE_CUT",
           "BOOTSTRAP_LEVEL"]

#: the offset-to-noise ratio above which the bandit chapters' rule says MaxPO wins (counted per prompt)
OFFSET_TO_NOISE_CUT = 1.5
#: the coverage of every bootstrap interval (two-sided, percentile)
BOOTSTRAP_LEVEL = 0.95


def _flat_grad(model: nn.Module) -> torch.Tensor:
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).detach().reshape(-1).double().cpu()
                      for p in model.parameters()])


def _repeat_statistics(g: torch.Tensor) -> dict[str, float]:
    """``mean_sq_norm``, ``total_variance``, ``relative_variance``, ``cosine_to_mean`` of R gradients ``g`` (R, d).

    The formulas are the module docstring's (unbiased trace of the covariance, ddof 1;
    ``|mean|^2 - V/R``; each row's cosine to the mean of the other R - 1).
    """
    repeats = g.shape[0]
    mean = g.mean(0)
    total_var = float(((g - mean) ** 2).sum(1).sum() / (repeats - 1))
    sq = float(mean @ mean) - total_var / repeats
    loo = (g.sum(0)[None] - g) / (repeats - 1)
    cos = torch.nn.functional.cosine_similarity(g, loo, dim=1, eps=1e-30)
    return {"mean_sq_norm": sq, "total_variance": total_var,
            "relative_variance": total_var / sq if sq > 0 else float("inf"), "cosine_to_mean": float(cos.mean())}


def gradient_variance(model: nn.Module, tok: LabTokenizer, cfg: LabConfig, methods: Sequence[str],
                      prompts: int, repeats: int, seed: int, bf16: bool = False) -> dict[str, Any]:
    """Per method: ``mean_sq_norm``, ``total_variance``, ``relative_variance``, ``cosine_to_mean`` (module docstring).

    ``cfg`` gives the task, K, B, the reward kind and ``max_new_tokens``; the model's
    weights are left unchanged (its gradients are cleared).
    """
    if repeats < 2:
        raise ValueError(f"gradient variance needs at least 2 repeats, got {repeats}")
    rl = cfg.rl
    b = rl.samples_per_prompt
    puzzles = sample_puzzles(cfg.task, prompts, derive_seed(seed, "gradvar-prompts"), "train")
    group = [p for p in puzzles for _ in range(b)]
    encoded = [encode_prompt(tok, p) for p in group]
    grads: dict[str, list[torch.Tensor]] = {m: [] for m in methods}
    mixed = 0
    for r in range(repeats):
        roll = sample(model, encoded, uniforms(derive_seed(seed, "gradvar-sample", r), len(group), rl.max_new_tokens),
                      tok.eos_id, tok.pad_id, bf16)
        scores = score_batch(group, [tok.decode(a) for a in roll.answers])
        key = "correct" if rl.reward == "binary" else "partial"
        rewards = torch.tensor([float(getattr(s, key)) for s in scores]).view(prompts, b)
        mixed += int(((rewards.min(-1).values < rewards.max(-1).values)).sum())
        logp = token_logprobs(model, roll, bf16)
        for j, m in enumerate(methods):
            adv = scaled_advantages(rewards, rl.k, m, advantage_scale(m, b, rl.k)).reshape(-1).to(logp.device)
            loss = policy_loss(logp, logp.detach(), adv, roll.completion_mask, "sequence", float(prompts)).loss
            model.zero_grad(set_to_none=True)
            loss.backward(retain_graph=j < len(methods) - 1)
            grads[m].append(_flat_grad(model))
    model.zero_grad(set_to_none=True)
    out: dict[str, Any] = {"prompts": prompts, "repeats": repeats, "samples_per_prompt": b, "k": rl.k,
                           "mixed_group_share": mixed / (prompts * repeats), "methods": {}}
    for m in methods:
        out["methods"][m] = _repeat_statistics(torch.stack(grads[m]))
    return out


class PromptMoments:
    r"""Running sums that give, per prompt, the unbiased trace covariance of vector series over repeats.

    Feed :meth:`add` one ``(P, d)`` array per named series for each repeat; then
    :meth:`trace_cov` ``(a, b)`` is, per prompt,
    :math:`\frac{1}{R-1}\big(\sum_r \langle a_r, b_r\rangle - \frac1R \langle \sum_r a_r, \sum_r b_r\rangle\big)`,
    the unbiased estimate of :math:`\operatorname{tr}\operatorname{Cov}(a, b)` (``a == b``: the trace of the variance).
    """

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self.pairs = [tuple(sorted(p)) for p in pairs]
        self.sums: dict[str, torch.Tensor] = {}
        self.cross: dict[tuple[str, ...], torch.Tensor] = {}
        self.repeats = 0

    def add(self, series: dict[str, torch.Tensor]) -> None:
        """One repeat: ``series[name]`` is a ``(P, d)`` array (one row per prompt)."""
        for name, x in series.items():
            x = x.double()
            self.sums[name] = self.sums[name] + x if name in self.sums else x.clone()
        for a, b in self.pairs:
            dot = (series[a].double() * series[b].double()).sum(-1)
            self.cross[(a, b)] = self.cross[(a, b)] + dot if (a, b) in self.cross else dot
        self.repeats += 1

    def trace_cov(self, a: str, b: str) -> np.ndarray:
        r"""Per prompt, the unbiased :math:`\operatorname{tr}\operatorname{Cov}(a, b)` (see the class docstring)."""
        r = self.repeats
        if r < 2:
            raise ValueError(f"a covariance needs at least 2 repeats, got {r}")
        key = tuple(sorted((a, b)))
        if key not in self.cross:
            raise KeyError(f"pair {key} was not accumulated; declare it in pairs")
        centred = self.cross[key] - (self.sums[a] * self.sums[b]).sum(-1) / r
        return (centred / (r - 1)).numpy()


def family_summary(v0: float, v1: float, v2: float) -> dict[str, float]:
    r"""The variance curve :math:`V(\lambda) = v_0 - 2\lambda v_1 + \lambda^2 v_2` of the loo-1/MaxPO family.

    The sign convention is :math:`g(\lambda) = g_0 - \lambda e`, :math:`e = g_0 - g_{\text{MaxPO}}`
    (MATH.md); :func:`maxpo.family.variance_quadratic` writes the same curve with
    :math:`e' = -e`, and its :class:`~maxpo.family.VarianceQuadratic` does the arithmetic here.
    :math:`\lambda = 0` is loo-1 and :math:`\lambda = 1` MaxPO; :math:`\lambda^* = v_1 / v_2` minimises it
    (``v2 > 0`` required) and :math:`V(\lambda^*) = v_0 - v_1^2 / v_2`. Returns ``lambda_star``,
    ``var_star_over_var1`` :math:`= V(\lambda^*)/V(1)` and ``var0_over_var1`` :math:`= V(0)/V(1)`.
    """
    if not v2 > 0:
        raise ValueError(f"the family's curvature v2 must be positive, got {v2}")
    q = VarianceQuadratic(*(torch.tensor(x, dtype=torch.float64) for x in (v0, -v1, v2)))
    var1 = float(q.at(1.0))
    return {"lambda_star": float(q.argmin()), "var_star_over_var1": float(q.minimum()) / var1,
            "var0_over_var1": float(q.at(0.0)) / var1}


def adaptive_lambdas(cross: np.ndarray, sq: np.ndarray, w: np.ndarray | None = None,
                     initial: float = 1.0) -> np.ndarray:
    r"""The out-of-sample λ of each repeat, taken as successive batches: ``R + 1`` values.

    ``cross[p, r]`` :math:`= \langle h_{pr}, e_{pr}\rangle` and ``sq[p, r]`` :math:`= \|e_{pr}\|^2`
    (prompt p, repeat r; :math:`h` loo-1's gradient, :math:`e = h - h^{\text{MaxPO}}`), ``w`` per-prompt
    weights (a bootstrap resample's counts; ones by default). Value r is
    :math:`\sum_{s<r} w\cdot\text{cross}_{:,s} / \sum_{s<r} w\cdot\text{sq}_{:,s}`, or ``initial``
    while that denominator is 0: the λ that :class:`maxpo.family.RunningLambda` (decay 1)
    holds before batch r. The last value uses all R repeats.
    """
    cross, sq = np.asarray(cross, dtype=np.float64), np.asarray(sq, dtype=np.float64)
    if cross.ndim != 2 or cross.shape != sq.shape:
        raise ValueError(f"cross and sq must both be (prompts, repeats), got {cross.shape} and {sq.shape}")
    weights = np.ones(cross.shape[0]) if w is None else np.asarray(w, dtype=np.float64)
    num = np.concatenate([[0.0], np.cumsum(weights @ cross)])
    den = np.concatenate([[0.0], np.cumsum(weights @ sq)])
    safe = np.where(den > 0, den, 1.0)
    return np.where(den > 0, num / safe, initial)


def adaptive_trace_variance(hh: np.ndarray, he: np.ndarray, ee: np.ndarray, lam: np.ndarray) -> np.ndarray:
    r"""Per prompt, :math:`\frac1{R-1}\sum_r \|a_r - \bar a\|^2` of :math:`a_r = h_r - \lambda_r e_r`, from Grams.

    ``hh[p, r, s]`` :math:`= \langle h_{pr}, h_{ps}\rangle`, ``he[p, r, s]`` :math:`= \langle h_{pr}, e_{ps}\rangle`,
    ``ee[p, r, s]`` :math:`= \langle e_{pr}, e_{ps}\rangle` (``(P, R, R)``), ``lam`` the ``R`` values of λ
    applied at each repeat. With :math:`G = \langle a_r, a_s\rangle`, the value is
    :math:`(\operatorname{tr} G - \mathbf 1^\top G \mathbf 1 / R)/(R - 1)`: for a constant λ the
    family's :math:`v_0 - 2\lambda v_1 + \lambda^2 v_2`; for λ chosen from earlier repeats only,
    unbiased for the variance averaged over repeats (module docstring).
    """
    hh, he, ee = (np.asarray(x, dtype=np.float64) for x in (hh, he, ee))
    lam = np.asarray(lam, dtype=np.float64)
    r = hh.shape[-1]
    if not (hh.shape == he.shape == ee.shape and hh.ndim == 3 and hh.shape[1] == r and lam.shape == (r,)):
        raise ValueError(f"hh, he, ee must be (P, R, R) and lam (R,), got {hh.shape}, {he.shape}, {ee.shape}, "
                         f"{lam.shape}")
    if r < 2:
        raise ValueError(f"a variance needs at least 2 repeats, got {r}")
    # G[r, s] = <h_r - l_r e_r, h_s - l_s e_s>
    g = hh - he * lam[None, None, :] - np.swapaxes(he, 1, 2) * lam[None, :, None] + ee * np.outer(lam, lam)[None]
    return (np.trace(g, axis1=1, axis2=2) - g.sum((1, 2)) / r) / (r - 1)


def bootstrap_prompts(stat: Callable[[np.ndarray], dict[str, float]], n_prompts: int, n_boot: int = 4000,
                      level: float = BOOTSTRAP_LEVEL, seed: int = 0) -> dict[str, dict[str, float]]:
    """Percentile-bootstrap intervals over prompts for every value that ``stat`` returns.

    ``stat(w)`` receives per-prompt multiplicities ``w`` (all ones for the estimate
    itself; a resample's counts otherwise) and returns named statistics; every
    statistic of a resample uses the same ``w`` (paired). Returns
    ``{name: {"value", "lo", "hi"}}``.
    """
    if n_prompts < 2:
        raise ValueError(f"a bootstrap over prompts needs at least 2 prompts, got {n_prompts}")
    point = stat(np.ones(n_prompts))
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {k: [] for k in point}
    for _ in range(n_boot):
        w = np.bincount(rng.integers(0, n_prompts, size=n_prompts), minlength=n_prompts).astype(np.float64)
        try:
            values = stat(w)
        except (ValueError, ZeroDivisionError):
            continue  # a degenerate resample (e.g. no prompt with both outcomes)
        for k, v in values.items():
            draws[k].append(v)
    out = {}
    for k, v in point.items():
        lo, hi = np.quantile(draws[k], [(1 - level) / 2, (1 + level) / 2]) if draws[k] else (np.nan, np.nan)
        out[k] = {"value": float(v), "lo": float(lo), "hi": float(hi)}
    return out


def per_sample_scores(model: nn.Module, roll: Any, b: int) -> torch.Tensor:
    r"""``(N, d)`` float64: each answer's score :math:`\nabla_\theta \sum_t \log \pi(y_{it})` over its real tokens.

    Answers come in groups of ``b`` with the same prompt; each group's left padding is
    cut off, so causal attention alone is exact and ``torch.func.vmap`` needs no mask.
    Parameters are flattened in ``model.parameters()`` order.
    """
    from torch.func import functional_call, grad, vmap

    params = {k: v.detach() for k, v in model.named_parameters()}
    p_len = roll.prompt_len
    mask = roll.attention_mask

    def logp(prm: dict[str, torch.Tensor], ids: torch.Tensor, cm: torch.Tensor) -> torch.Tensor:
        logits = functional_call(model, prm, (ids[None, :-1],))[0]
        start = ids.shape[0] - cm.shape[0]
        lp = torch.log_softmax(logits[start - 1:].float(), -1).gather(-1, ids[start:, None])[:, 0]
        return (lp * cm).sum()

    rows = []
    for g0 in range(0, roll.input_ids.shape[0], b):
        pad = 0 if mask is None else int((~mask[g0, :p_len]).sum())
        ids = roll.input_ids[g0:g0 + b, pad:]
        cm = roll.completion_mask[g0:g0 + b].float()
        gr = vmap(grad(logp), in_dims=(None, 0, 0))(params, ids, cm)
        rows.append(torch.cat([gr[name].reshape(ids.shape[0], -1).double() for name, _ in model.named_parameters()], 1))
    return torch.cat(rows)


def gradient_study(model: nn.Module, tok: LabTokenizer, cfg: LabConfig, methods: Sequence[str], prompts: int,
                   repeats: int, seed: int, n_boot: int = 4000) -> dict[str, Any]:
    """Everything of the module docstring from one pass over ``repeats`` groups of the same ``prompts`` puzzles.

    ``methods`` must include ``pkpo_loo1`` and ``maxpo`` (the family's two ends).
    Returns the per-method numbers of :func:`gradient_variance` (``methods``), the
    family (``family``: per-prompt-summed ``v0, v1, v2``, ``lambda_star`` and the
    two variance ratios with bootstrap intervals over prompts, and the curve on a
    grid of lambda), ``per_prompt`` (delta, c*, correct-answer counts, norms, lengths),
    ``answers`` (correct against wrong, pooled and paired by prompt) and ``adaptive``
    (the out-of-sample λ of each repeat, ``lambda_hat_sequence``, and with intervals
    paired with the family's: ``var_adaptive_over_var1``, ``var_adaptive_over_var_star``,
    ``lambda_hat_final``, the λ after all repeats). Keeps every repeat's per-prompt
    loo-1 gradient and :math:`e` in memory (``2 * prompts * repeats * parameters`` doubles).
    """
    if repeats < 2:
        raise ValueError(f"gradient study needs at least 2 repeats, got {repeats}")
    missing = {"pkpo_loo1", "maxpo"} - set(methods)
    if missing:
        raise ValueError(f"gradient study needs methods pkpo_loo1 and maxpo; missing {sorted(missing)}")
    rl = cfg.rl
    b, g_n = rl.samples_per_prompt, prompts
    puzzles = sample_puzzles(cfg.task, prompts, derive_seed(seed, "gradvar-prompts"), "train")
    group = [p for p in puzzles for _ in range(b)]
    encoded = [encode_prompt(tok, p) for p in group]
    mom = PromptMoments([("loo", "loo"), ("loo", "e"), ("e", "e"), ("loo", "S"), ("S", "S"), ("max", "max")])
    full: dict[str, list[torch.Tensor]] = {m: [] for m in methods}
    dbar = np.zeros((repeats, prompts))
    # per answer: prompt, correct, length, log-probability, score norm
    ans: dict[str, list[np.ndarray]] = {k: [] for k in ("correct", "length", "logp", "norm")}
    mixed = 0
    running = RunningLambda(decay=1.0, initial=1.0)
    lam_used = np.zeros(repeats)  # the lambda RunningLambda holds before each repeat (earlier repeats only)
    keep_h: torch.Tensor | None = None  # (P, R, d): loo-1's per-prompt gradient of every repeat
    keep_e: torch.Tensor | None = None  # (P, R, d): e = h_loo - h_maxpo
    for r in range(repeats):
        roll = sample(model, encoded, uniforms(derive_seed(seed, "gradvar-sample", r), len(group), rl.max_new_tokens),
                      tok.eos_id, tok.pad_id, False)
        scores = score_batch(group, [tok.decode(a) for a in roll.answers])
        key = "correct" if rl.reward == "binary" else "partial"
        rewards = torch.tensor([float(getattr(s, key)) for s in scores]).view(prompts, b)
        mixed += int(((rewards.min(-1).values < rewards.max(-1).values)).sum())
        s_i = per_sample_scores(model, roll, b)  # (N, d)
        with torch.no_grad():
            lp = (token_logprobs(model, roll).double() * roll.completion_mask).sum(-1)
        d = s_i.shape[1]
        s_pd = s_i.view(prompts, b, d)
        adv = {m: scaled_advantages(rewards, rl.k, m, advantage_scale(m, b, rl.k)).double() for m in methods}
        h = {m: torch.einsum("pb,pbd->pd", adv[m], s_pd) for m in methods}
        for m in methods:
            full[m].append(h[m].sum(0) / g_n)
        mom.add({"loo": h["pkpo_loo1"], "max": h["maxpo"], "e": h["pkpo_loo1"] - h["maxpo"], "S": s_pd.sum(1)})
        if keep_h is None or keep_e is None:
            keep_h = torch.empty(prompts, repeats, d, dtype=torch.float64)
            keep_e = torch.empty(prompts, repeats, d, dtype=torch.float64)
        keep_h[:, r] = h["pkpo_loo1"]
        keep_e[:, r] = h["pkpo_loo1"] - h["maxpo"]
        lam_used[r] = running.lam
        running.update_gradients(h["pkpo_loo1"], h["maxpo"])
        dbar[r] = adv["pkpo_loo1"].mean(-1).numpy()
        ans["correct"].append(rewards.numpy() >= 1.0)  # a full reward: correct, for binary and partial rewards
        ans["length"].append(roll.completion_mask.sum(-1).double().view(prompts, b).numpy())
        ans["logp"].append(lp.view(prompts, b).numpy())
        ans["norm"].append(s_i.norm(dim=1).view(prompts, b).numpy())
    out: dict[str, Any] = {"prompts": prompts, "repeats": repeats, "samples_per_prompt": b, "k": rl.k,
                           "parameters": int(full[methods[0]][0].numel()),
                           "mixed_group_share": mixed / (prompts * repeats), "methods": {}}
    for m in methods:
        out["methods"][m] = _repeat_statistics(torch.stack(full[m]))
    v0p, v1p, v2p = mom.trace_cov("loo", "loo"), mom.trace_cov("loo", "e"), mom.trace_cov("e", "e")
    vmaxp = mom.trace_cov("max", "max")
    cov_hs, var_s = mom.trace_cov("loo", "S"), mom.trace_cov("S", "S")

    if keep_h is None or keep_e is None:
        raise RuntimeError("no repeat was recorded")
    grams = {name: torch.stack([x[p] @ y[p].T for p in range(prompts)]).numpy()
             for name, x, y in (("hh", keep_h, keep_h), ("he", keep_h, keep_e), ("ee", keep_e, keep_e))}
    del keep_h, keep_e
    cross = np.diagonal(grams["he"], axis1=1, axis2=2)  # (P, R): <h_pr, e_pr>
    sq = np.diagonal(grams["ee"], axis1=1, axis2=2)  # (P, R): |e_pr|^2
    lam_seq = adaptive_lambdas(cross, sq)
    if not np.allclose(lam_seq[:-1], lam_used, rtol=1e-9, atol=1e-12) or not np.isclose(lam_seq[-1], running.lam,
                                                                                           rtol=1e-9, atol=1e-12):
        raise RuntimeError("the adaptive lambda from the Gram matrices disagrees with RunningLambda's")

    def fam(w: np.ndarray) -> dict[str, float]:
        out_ = family_summary(float(w @ v0p), float(w @ v1p), float(w @ v2p))
        lam_w = adaptive_lambdas(cross, sq, w)
        v_ad = float(w @ adaptive_trace_variance(grams["hh"], grams["he"], grams["ee"], lam_w[:-1]))
        v1_w = float(w @ (v0p - 2 * v1p + v2p))
        out_["var_adaptive_over_var1"] = v_ad / v1_w
        out_["var_adaptive_over_var_star"] = out_["var_adaptive_over_var1"] / out_["var_star_over_var1"]
        out_["lambda_hat_final"] = float(lam_w[-1])
        return out_

    fam_ci = bootstrap_prompts(fam, prompts, n_boot, seed=derive_seed(seed, "gradvar-boot") % 2**32)
    adaptive = {"decay": 1.0, "initial": 1.0, "lambda_hat_sequence": lam_seq.tolist(),
                **{key: fam_ci.pop(key) for key in ("var_adaptive_over_var1", "var_adaptive_over_var_star",
                                                   "lambda_hat_final")}}
    v0, v1, v2 = float(v0p.sum()), float(v1p.sum()), float(v2p.sum())
    lam = np.linspace(-0.5, 2.0, 26)
    out["family"] = {"v0": v0, "v1": v1, "v2": v2, "var_maxpo_direct": float(vmaxp.sum()), **fam_ci,
                     "curve": {"lambda": lam.tolist(), "var_over_var1": ((v0 - 2 * lam * v1 + lam**2 * v2)
                                                                          / (v0 - 2 * v1 + v2)).tolist()}}
    out["adaptive"] = adaptive
    out["bootstrap"] = {"level": BOOTSTRAP_LEVEL, "resamples": n_boot, "over": "prompts"}
    delta = dbar.mean(0)
    sd_dbar = dbar.std(0, ddof=1)
    c_star = cov_hs / var_s
    correct = np.stack(ans["correct"], 1)  # (P, R, B)
    arrays = {k: np.stack(ans[k], 1) for k in ("length", "logp", "norm")}
    per_prompt = []
    for p in range(prompts):
        row: dict[str, Any] = {"delta": float(delta[p]), "sd_dbar": float(sd_dbar[p]), "c_star": float(c_star[p]),
                               "correct_share": float(correct[p].mean())}
        for k, a in arrays.items():
            row[f"{k}_correct"] = float(a[p][correct[p]].mean()) if correct[p].any() else None
            row[f"{k}_wrong"] = float(a[p][~correct[p]].mean()) if (~correct[p]).any() else None
        per_prompt.append(row)
    out["per_prompt"] = per_prompt
    # pooled over all answers, and paired: wrong minus correct within prompts that have both
    both = [p for p in range(prompts) if per_prompt[p]["length_correct"] is not None
            and per_prompt[p]["length_wrong"] is not None]
    answers: dict[str, Any] = {"n_correct": int(correct.sum()), "n_wrong": int((~correct).sum()),
                               "prompts_with_both": len(both)}
    for k, a in arrays.items():
        answers[f"{k}_correct"] = float(a[correct].mean()) if correct.any() else None
        answers[f"{k}_wrong"] = float(a[~correct].mean()) if (~correct).any() else None
    if len(both) >= 2:
        diffs = {k: np.array([per_prompt[p][f"{k}_wrong"] - per_prompt[p][f"{k}_correct"] for p in both])
                 for k in arrays}

        def wrong_minus_correct(w: np.ndarray) -> dict[str, float]:
            if w.sum() == 0:
                raise ValueError("empty resample")
            return {k: float(w @ v / w.sum()) for k, v in diffs.items()}

        answers["wrong_minus_correct"] = bootstrap_prompts(wrong_minus_correct, len(both), n_boot)
    out["answers"] = answers
    # the best shift against the offset, over prompts where the offset is estimated away from zero
    informative = [p for p in range(prompts) if delta[p] > 0 and var_s[p] > 0]
    out["shift"] = {"prompts": len(informative), "offset_to_noise_cut": OFFSET_TO_NOISE_CUT,
                    "c_star_over_delta_median": float(np.median([c_star[p] / delta[p] for p in informative]))
                    if informative else None,
                    "offset_to_noise_above_1_5": int(sum(delta[p] / sd_dbar[p] > OFFSET_TO_NOISE_CUT
                                                         for p in range(prompts)
                                                         if sd_dbar[p] > 0))}
    if len(informative) >= 2:
        ci_, di_ = c_star[informative], delta[informative]

        def pooled_ratio(w: np.ndarray) -> dict[str, float]:
            return {"c_star_over_delta_pooled": float((w @ ci_) / (w @ di_))}

        out["shift"].update(bootstrap_prompts(pooled_ratio, len(informative), n_boot))
    return out
