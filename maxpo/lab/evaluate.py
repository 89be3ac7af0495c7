"""Evaluation on held-out puzzles: pass@k, max@k, entropy.

Each held-out puzzle gets ``n`` sampled answers; pass@k uses the unbiased
estimator ``1 - C(n - c, k) / C(n, k)`` (:func:`maxpo.passk_estimate`) and max@k the
U-statistic of the partial-credit rewards (:func:`maxpo.maxk_estimate`), both
averaged over puzzles. ``n >= k`` is required for every reported ``k``.

With several processes each takes a contiguous slice of the puzzles (all ``n``
answers of a puzzle on one process) and the sums are all-reduced; the random
numbers are drawn for the whole set, so the result does not depend on how many
processes share the work.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

import maxpo
from maxpo.lab.distributed import DistInfo, all_reduce_sum, shard_range
from maxpo.lab.sampling import sample
from maxpo.lab.seeding import uniforms
from maxpo.lab.task import Puzzle, score_batch
from maxpo.lab.tokenizer import LabTokenizer

__all__ = ["EvalResult", "encode_prompt", "evaluate", "passk_curve_ks"]


def passk_curve_ks(n_samples: int) -> list[int]:
    """The k of a pass@k curve from ``n_samples`` answers per puzzle: 1, 2, 4, ... up to ``n_samples`` (included)."""
    if n_samples < 1:
        return []
    ks = [1 << i for i in range(n_samples.bit_length()) if 1 << i <= n_samples]
    return ks if ks[-1] == n_samples else ks + [n_samples]


@dataclass
class EvalResult:
    """Held-out metrics: ``passk[k]``, ``maxk[k]``, per-token entropy etc., and each puzzle's count of correct answers
    (``correct_counts``, in puzzle order: what a paired bootstrap over puzzles resamples)."""

    passk: dict[int, float]
    maxk: dict[int, float]
    entropy: float
    well_formed: float
    mean_length: float
    n_prompts: int
    n_samples: int
    correct_counts: list[int]

    def to_dict(self) -> dict:
        out: dict = {f"pass@{k}": v for k, v in self.passk.items()}
        out.update({f"max@{k}": v for k, v in self.maxk.items()})
        out.update(entropy=self.entropy, well_formed=self.well_formed, mean_length=self.mean_length,
                   n_prompts=self.n_prompts, n_samples=self.n_samples, correct_counts=self.correct_counts)
        return out


def encode_prompt(tokenizer: LabTokenizer, puzzle: Puzzle) -> list[int]:
    """Token ids of a puzzle's prompt, BOS first when the tokenizer has one."""
    ids = tokenizer.encode(puzzle.prompt)
    return ([tokenizer.bos_id] if tokenizer.bos_id is not None else []) + ids


def _vocab_size(model: nn.Module) -> int | None:
    """The model's output vocabulary, when its config says (the lab's GPT and Hugging Face models do)."""
    for cfg in (getattr(model, "cfg", None), getattr(getattr(model, "model", None), "config", None)):
        if cfg is not None and getattr(cfg, "vocab_size", None):
            return int(cfg.vocab_size)
    return None


@torch.no_grad()
def evaluate(
    model: nn.Module,
    tokenizer: LabTokenizer,
    puzzles: Sequence[Puzzle],
    n_samples: int,
    ks: Sequence[int],
    max_new_tokens: int,
    seed: int,
    bf16: bool = False,
    dist: DistInfo | None = None,
    chunk: int = 4096,
) -> EvalResult:
    """Sample ``n_samples`` answers for every puzzle and score them (see the module docstring).

    The model is used as it is: the lab keeps its models in ``eval()`` mode
    (no dropout) throughout, for sampling and for training alike.

    Raises:
        ValueError: a ``k`` larger than ``n_samples`` (no unbiased estimate exists).
    """
    bad = [k for k in ks if not 1 <= k <= n_samples]
    if bad:
        raise ValueError(f"eval k values {bad} need 1 <= k <= n_samples={n_samples}")
    dist = dist or DistInfo()
    lo, hi = shard_range(len(puzzles), dist)
    u_all = uniforms(seed, len(puzzles) * n_samples, max_new_tokens)
    correct, partial = [], []
    ent_sum = torch.zeros((), dtype=torch.float64)
    tok_sum = torch.zeros((), dtype=torch.float64)
    wf_sum = torch.zeros((), dtype=torch.float64)
    vocab = _vocab_size(model)
    if vocab:  # bound the (answers x vocabulary) float32 arrays of a sampling step to about 2^26 numbers
        chunk = min(chunk, max(n_samples, 2**26 // vocab))
    per_chunk = max(1, chunk // n_samples)
    for start in range(lo, hi, per_chunk):
        stop = min(hi, start + per_chunk)
        group = [p for p in puzzles[start:stop] for _ in range(n_samples)]
        prompts = [encode_prompt(tokenizer, p) for p in group]
        roll = sample(model, prompts, u_all[start * n_samples : stop * n_samples], tokenizer.eos_id, tokenizer.pad_id,
                      bf16)
        scores = score_batch(group, [tokenizer.decode(a) for a in roll.answers])
        correct.append(torch.tensor([s.correct for s in scores], dtype=torch.float64).view(-1, n_samples))
        partial.append(torch.tensor([s.partial for s in scores], dtype=torch.float64).view(-1, n_samples))
        ent_sum += roll.entropy.double().sum().cpu()
        tok_sum += roll.n_tokens
        wf_sum += sum(s.well_formed for s in scores)
    c = torch.cat(correct) if correct else torch.zeros(0, n_samples, dtype=torch.float64)
    r = torch.cat(partial) if partial else torch.zeros(0, n_samples, dtype=torch.float64)
    sums = [maxpo.passk_estimate(c, k).sum() if len(c) else torch.zeros((), dtype=torch.float64) for k in ks]
    sums += [maxpo.maxk_estimate(r, k).sum() if len(r) else torch.zeros((), dtype=torch.float64) for k in ks]
    totals = all_reduce_sum(torch.stack(sums + [ent_sum, tok_sum, wf_sum]), dist)
    n_all = len(puzzles)
    counts = torch.zeros(n_all, dtype=torch.float64)
    counts[lo:hi] = c.sum(-1)
    counts = all_reduce_sum(counts, dist)
    nk = len(ks)
    return EvalResult(
        passk={k: float(totals[i]) / n_all for i, k in enumerate(ks)},
        maxk={k: float(totals[nk + i]) / n_all for i, k in enumerate(ks)},
        entropy=float(totals[-3] / max(float(totals[-2]), 1.0)),
        well_formed=float(totals[-1]) / (n_all * n_samples),
        mean_length=float(totals[-2]) / (n_all * n_samples),
        n_prompts=n_all,
        n_samples=n_samples,
        correct_counts=[int(x) for x in counts.tolist()],
    )
