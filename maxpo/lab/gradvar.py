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
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from maxpo.lab.config import LabConfig
from maxpo.lab.evaluate import encode_prompt
from maxpo.lab.loss import advantage_scale, policy_loss, scaled_advantages
from maxpo.lab.sampling import sample, token_logprobs
from maxpo.lab.seeding import derive_seed, uniforms
from maxpo.lab.task import sample_puzzles, score_batch
from maxpo.lab.tokenizer import LabTokenizer

__all__ = ["gradient_variance"]


def _flat_grad(model: nn.Module) -> torch.Tensor:
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).detach().reshape(-1).double().cpu()
                      for p in model.parameters()])


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
        g = torch.stack(grads[m])
        mean = g.mean(0)
        total_var = float(((g - mean) ** 2).sum(1).sum() / (repeats - 1))
        sq = float(mean @ mean) - total_var / repeats
        loo = (g.sum(0)[None] - g) / (repeats - 1)
        cos = torch.nn.functional.cosine_similarity(g, loo, dim=1, eps=1e-30)
        out["methods"][m] = {"mean_sq_norm": sq, "total_variance": total_var,
                             "relative_variance": total_var / sq if sq > 0 else float("inf"),
                             "cosine_to_mean": float(cos.mean())}
    return out
