"""KV-cached sampling of answers, and the log-probabilities of sampled answers.

Sampling draws each token exactly from the model's distribution (temperature 1,
no top-k or top-p), by inverting the CDF with a uniform number that the caller
passes in: ``uniforms[i, t]`` decides token ``t`` of sequence ``i``. The caller
draws those numbers for the whole global batch from a seed, so a sequence gets
the same answer whichever process (DDP rank) samples it and whatever else is in
its batch: runs with 1 or 2 processes sample the same answers, and a resumed run
samples what the uninterrupted run would have.

Prompts are left-padded (a Hugging Face tokenizer gives prompts of different
lengths); position ids then count real tokens only. Answers stop at EOS; the EOS
token is part of the answer (stopping is a decision of the policy too).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Rollout", "pad_prompts", "sample", "teacher_rollout", "token_logprobs", "micro_batches"]


def micro_batches(n: int, size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges that cover ``range(n)`` in pieces of ``size`` (``size`` 0: one piece)."""
    if size <= 0 or size >= n:
        return [(0, n)]
    return [(a, min(n, a + size)) for a in range(0, n, size)]


@dataclass
class Rollout:
    """Prompts with their sampled answers, ready for a training forward pass.

    Attributes:
        input_ids: ``(N, P + T)`` left-padded prompt, then the answer, right-padded.
        attention_mask: ``(N, P + T)`` bool, or ``None`` when no prompt is padded
            (then causal attention alone is exact: padding after an answer's EOS
            is never attended to by a real token).
        position_ids: ``(N, P + T)``.
        completion_mask: ``(N, T)`` bool, the answer's real tokens (EOS included).
        prompt_len: ``P``.
        answers: the answer ids of each sequence, without EOS or padding.
        entropy: ``(N,)`` sum over answer tokens of the entropy of the model's
            next-token distribution.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor | None
    position_ids: torch.Tensor
    completion_mask: torch.Tensor
    prompt_len: int
    answers: list[list[int]]
    entropy: torch.Tensor

    def rows(self, start: int, stop: int) -> Rollout:
        """The sequences ``start:stop`` (same layout; a no-op slice for the whole batch)."""
        if start == 0 and stop == len(self.answers):
            return self
        return Rollout(
            input_ids=self.input_ids[start:stop],
            attention_mask=None if self.attention_mask is None else self.attention_mask[start:stop],
            position_ids=self.position_ids[start:stop],
            completion_mask=self.completion_mask[start:stop],
            prompt_len=self.prompt_len,
            answers=self.answers[start:stop],
            entropy=self.entropy[start:stop],
        )

    @property
    def n_tokens(self) -> int:
        """Number of answer tokens (EOS included) in the rollout."""
        return int(self.completion_mask.sum())


def pad_prompts(
    prompts: Sequence[Sequence[int]], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token lists to one tensor; return ``(ids, mask)``, both ``(N, P)``."""
    if not prompts:
        raise ValueError("no prompts to pad")
    width = max(len(p) for p in prompts)
    if width == 0:
        raise ValueError("every prompt is empty")
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.bool)
    for i, p in enumerate(prompts):
        if p:
            ids[i, width - len(p):] = torch.tensor(p, dtype=torch.long)
            mask[i, width - len(p):] = True
    return ids.to(device), mask.to(device)


@torch.no_grad()
def sample(
    model: nn.Module,
    prompts: Sequence[Sequence[int]],
    uniforms: torch.Tensor,
    eos_id: int,
    pad_id: int,
    bf16: bool = False,
) -> Rollout:
    """Sample one answer per prompt, at most ``uniforms.shape[1]`` tokens, with a KV cache.

    Args:
        model: a lab causal LM (``model(ids, attention_mask, position_ids, cache)``
            and ``model.new_cache``).
        prompts: token ids of each prompt (repeat a prompt to sample it B times).
        uniforms: ``(N, T)`` numbers in ``[0, 1)`` on the CPU, one per token to draw.
        eos_id, pad_id: token ids that end an answer and fill after it.
        bf16: run the model under bf16 autocast (on GPU); probabilities are float32.
    """
    n, t_max = uniforms.shape
    if n != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but uniforms for {n}")
    device = next(model.parameters()).device
    ids, pmask = pad_prompts(prompts, pad_id, device)
    padded = not bool(pmask.all())
    pos = (pmask.long().cumsum(-1) - 1).clamp(min=0)
    full_mask = pmask if padded else None
    u = uniforms.to(device=device, dtype=torch.float32)
    # every lab model (GPT, HFCausalLM) defines new_cache; nn.Module does not declare it
    cache = cast(Any, model).new_cache(n, ids.shape[1] + t_max)
    out = torch.full((n, t_max), pad_id, dtype=torch.long, device=device)
    cmask = torch.zeros((n, t_max), dtype=torch.bool, device=device)
    entropy = torch.zeros(n, dtype=torch.float32, device=device)
    done = torch.zeros(n, dtype=torch.bool, device=device)
    next_pos = pos[:, -1:] + 1
    ctx = _autocast(device, bf16)
    with ctx:
        logits = model(ids, attention_mask=full_mask, position_ids=pos, cache=cache)[:, -1]
    steps = 0
    for t in range(t_max):
        logp = F.log_softmax(logits.float(), dim=-1)
        probs = logp.exp()
        cdf = probs.cumsum(-1)
        tok = torch.searchsorted(cdf, (u[:, t : t + 1] * cdf[:, -1:]).contiguous(), right=True).squeeze(-1)
        tok = tok.clamp_(max=probs.shape[-1] - 1)
        active = ~done
        entropy += torch.where(active, -(probs * logp).sum(-1), torch.zeros_like(entropy))
        tok = torch.where(active, tok, torch.full_like(tok, pad_id))
        out[:, t] = tok
        cmask[:, t] = active
        done |= tok == eos_id
        steps = t + 1
        if t == t_max - 1 or (t % 4 == 3 and bool(done.all())):
            break
        if full_mask is not None:
            full_mask = torch.cat([full_mask, active[:, None]], dim=1)
        with ctx:
            logits = model(tok[:, None], attention_mask=full_mask, position_ids=next_pos, cache=cache)[:, -1]
        next_pos = next_pos + 1
    out, cmask = out[:, :steps], cmask[:, :steps]
    answers = _trim(out.tolist(), cmask.tolist(), eos_id)
    return _rollout(ids, pmask, pos, out, cmask, answers, entropy)


def teacher_rollout(
    prompts: Sequence[Sequence[int]], answers: Sequence[Sequence[int]], eos_id: int, pad_id: int, device: torch.device
) -> Rollout:
    """A :class:`Rollout` of given answers (EOS appended), laid out exactly as :func:`sample` lays out its own."""
    if len(prompts) != len(answers):
        raise ValueError(f"{len(prompts)} prompts but {len(answers)} answers")
    ids, pmask = pad_prompts(prompts, pad_id, device)
    pos = (pmask.long().cumsum(-1) - 1).clamp(min=0)
    width = max(len(a) for a in answers) + 1
    out = torch.full((len(answers), width), pad_id, dtype=torch.long)
    cmask = torch.zeros((len(answers), width), dtype=torch.bool)
    for i, a in enumerate(answers):
        out[i, : len(a) + 1] = torch.tensor(list(a) + [eos_id], dtype=torch.long)
        cmask[i, : len(a) + 1] = True
    out, cmask = out.to(device), cmask.to(device)
    return _rollout(ids, pmask, pos, out, cmask, [list(a) for a in answers],
                    torch.zeros(len(answers), device=device))


def _rollout(ids: torch.Tensor, pmask: torch.Tensor, pos: torch.Tensor, out: torch.Tensor, cmask: torch.Tensor,
             answers: list[list[int]], entropy: torch.Tensor) -> Rollout:
    """Lay out left-padded prompts and right-padded answers as one :class:`Rollout`."""
    comp_pos = pos[:, -1:] + 1 + torch.arange(out.shape[1], device=out.device)[None]
    return Rollout(
        input_ids=torch.cat([ids, out], dim=1),
        attention_mask=None if bool(pmask.all()) else torch.cat([pmask, cmask], dim=1),
        position_ids=torch.cat([pos, comp_pos], dim=1),
        completion_mask=cmask,
        prompt_len=ids.shape[1],
        answers=answers,
        entropy=entropy,
    )


def _autocast(device: torch.device, bf16: bool) -> torch.autocast:
    """bf16 autocast on ``device`` when asked for, else a disabled (no-op) one."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16)


def _trim(rows: list[list[int]], masks: list[list[bool]], eos_id: int) -> list[list[int]]:
    """The real tokens of each answer, without its final EOS."""
    out = []
    for row, m in zip(rows, masks):
        kept = [x for x, keep in zip(row, m) if keep]
        out.append(kept[:-1] if kept and kept[-1] == eos_id else kept)
    return out


def token_logprobs(model: nn.Module, rollout: Rollout, bf16: bool = False) -> torch.Tensor:
    """Log-probabilities ``(N, T)`` (float32) of the rollout's answer tokens under ``model``.

    One full forward pass (no cache), differentiable; positions outside
    ``completion_mask`` hold values that must be masked by the caller.
    """
    with _autocast(rollout.input_ids.device, bf16):
        logits = model(rollout.input_ids[:, :-1],
                       attention_mask=None if rollout.attention_mask is None else rollout.attention_mask[:, :-1],
                       position_ids=rollout.position_ids[:, :-1])
    p = rollout.prompt_len
    logits = logits[:, p - 1 :].float()
    targets = rollout.input_ids[:, p:]
    return -F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none"
    ).view(targets.shape)
