"""The policy before RL: build it, warm-start it by supervised learning, cache it.

The from-scratch GPT knows nothing, so a short supervised stage on reference
solutions of training puzzles teaches it the format and some arithmetic. The
stage is sized to leave the model weak (a low but nonzero held-out pass@1), so
that RL has room to improve and pass@K differs from pass@1.

The result is cached on disk, keyed by a hash of the task, the model and the
warm-start settings (:meth:`LabConfig.warmstart_key`), and reused by every RL
run with the same key: all methods and seeds of a comparison start from the
same weights. The cache directory is ``$MAXPO_LAB_CACHE`` or
``~/.cache/maxpo/lab``; its files (``warmstart-<key>.pt``) can be copied or moved
to another machine's cache directory, or deleted to train again.
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from maxpo.lab.config import LabConfig
from maxpo.lab.evaluate import encode_prompt, evaluate
from maxpo.lab.model import GPT, GPTConfig
from maxpo.lab.preflight import check_context
from maxpo.lab.progress import progress
from maxpo.lab.sampling import teacher_rollout, token_logprobs
from maxpo.lab.seeding import derive_seed
from maxpo.lab.task import heldout_puzzles, sample_puzzles
from maxpo.lab.tokenizer import CharTokenizer, LabTokenizer

__all__ = ["build_policy", "cache_dir", "cache_path", "warm_start", "save_warm_start", "heldout_settings",
           "sft_step_lr"]


def cache_dir() -> Path:
    """Where warm-start models are cached (``$MAXPO_LAB_CACHE`` or ``~/.cache/maxpo/lab``)."""
    return Path(os.environ.get("MAXPO_LAB_CACHE", Path.home() / ".cache" / "maxpo" / "lab"))


def cache_path(cfg: LabConfig) -> Path:
    """The cache file of ``cfg``'s warm start: ``cache_dir() / warmstart-<key>.pt``."""
    return cache_dir() / f"warmstart-{cfg.warmstart_key()}.pt"


def build_policy(cfg: LabConfig, device: torch.device) -> tuple[nn.Module, LabTokenizer]:
    """A fresh policy and its tokenizer: the GPT (seeded by the warm-start seed) or the HF model."""
    if cfg.model.hf_path:
        from maxpo.lab.hf import context_length, load_hf

        hf_model, hf_tok = load_hf(cfg.model.hf_path, device)
        check_context(cfg, context_length(hf_model))
        return hf_model, hf_tok
    tok = CharTokenizer()
    torch.manual_seed(derive_seed(cfg.warmstart.seed, "init") % 2**31)
    m = cfg.model
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, n_layer=m.n_layer, n_head=m.n_head, d_model=m.d_model,
                          max_len=m.max_len))
    return model.to(device), tok


def sft_step_lr(step: int, steps: int, peak: float) -> float:
    """Learning rate of warm-start step ``step``: linear warm-up over 5%, cosine decay to 10% of ``peak``."""
    warm = max(1, steps // 20)
    if step < warm:
        return peak * (step + 1) / warm
    frac = (step - warm) / max(1, steps - warm)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


def _train_sft(
    model: nn.Module, tok: LabTokenizer, cfg: LabConfig, bf16: bool, show: bool
) -> tuple[float, int, list[dict]]:
    """Run the supervised stage in place.

    Returns the mean loss of the last 10% of the steps run, the number of steps
    run, and the early-stopping checks (step, training pass@1).
    """
    ws = cfg.warmstart
    device = next(model.parameters()).device
    opt = torch.optim.AdamW(model.parameters(), lr=ws.lr, betas=(0.9, 0.98), weight_decay=0.01)
    losses: list[float] = []
    checks: list[dict] = []
    bar = progress(range(ws.steps), desc="warm start", disable=not show)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = sft_step_lr(step, ws.steps, ws.lr)
        puzzles = sample_puzzles(cfg.task, ws.batch_size, derive_seed(ws.seed, "sft", step), "train")
        roll = teacher_rollout(
            [encode_prompt(tok, p) for p in puzzles], [tok.encode(p.solution) for p in puzzles], tok.eos_id, tok.pad_id,
            device,
        )
        logp = token_logprobs(model, roll, bf16)
        mask = roll.completion_mask
        loss = -(logp * mask).sum() / mask.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.detach()))
        if hasattr(bar, "set_postfix") and step % 20 == 0:
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        if ws.stop_at_pass1 is not None and (step + 1) % ws.check_every == 0:
            check = sample_puzzles(cfg.task, 256, derive_seed(ws.seed, "sft-check", step), "train")
            ev = evaluate(model, tok, check, 4, (1,), cfg.rl.max_new_tokens, derive_seed(ws.seed, "sft-check-u", step),
                          bf16)
            checks.append({"step": step + 1, "train_pass@1": ev.passk[1]})
            if ev.passk[1] >= ws.stop_at_pass1:
                break
    tail = losses[int(len(losses) * 0.9):]
    return sum(tail) / max(1, len(tail)), len(losses), checks


def heldout_settings(cfg: LabConfig) -> dict[str, Any]:
    """What the warm start's held-out metrics depend on besides its weights."""
    return {"prompts": cfg.eval.prompts, "samples": cfg.eval.samples, "seed": cfg.eval.seed,
            "ks": sorted({1, min(cfg.rl.k, cfg.eval.samples), cfg.eval.samples}),
            "max_new_tokens": cfg.rl.max_new_tokens}


def _heldout(model: nn.Module, tok: LabTokenizer, cfg: LabConfig, bf16: bool) -> dict[str, Any]:
    """Held-out pass@1, pass@K (K = the RL's k) and pass@n of the warm start, with their settings."""
    settings = heldout_settings(cfg)
    ev = evaluate(model, tok, heldout_puzzles(cfg.task, cfg.eval.prompts, cfg.eval.seed), cfg.eval.samples,
                  settings["ks"], cfg.rl.max_new_tokens, derive_seed(cfg.eval.seed, "warmstart-eval"), bf16)
    return {"heldout": ev.to_dict(), "heldout_settings": settings}


def warm_start(
    cfg: LabConfig, device: torch.device, bf16: bool, show: bool = True, use_cache: bool = True
) -> tuple[nn.Module, LabTokenizer, dict[str, Any]]:
    """The warm-started policy, its tokenizer and a summary of the stage.

    Loads ``warmstart-<key>.pt`` from :func:`cache_dir` when present; otherwise
    trains, measures held-out pass@1 and pass@K (K = the RL's k), and writes the
    cache file (atomically). The summary holds the key, steps, final loss, held-out
    metrics, wall time and whether it came from the cache.
    """
    model, tok = build_policy(cfg, device)
    model.eval()  # no dropout anywhere in the lab
    if cfg.warmstart.steps == 0:
        return model, tok, {"key": cfg.warmstart_key(), "steps": 0, "cached": False}
    path = cache_path(cfg)
    if use_cache and path.is_file():
        try:
            blob = torch.load(path, map_location=device, weights_only=True)
            model.load_state_dict(blob["model"])
            info = blob["info"]
        except Exception as err:  # a truncated or foreign file: torch raises several exception types
            msg = " ".join(str(err).split())[:120]
            raise ValueError(f"{path}: the cached warm start cannot be read (truncated or corrupt: {msg}); "
                             "delete the file to train the warm start again") from None
        if info.get("heldout_settings") != heldout_settings(cfg):
            # the cache was written by a run with other evaluation settings (e.g. the smoke
            # preset shares the CPU presets' warm start): measure with this run's settings
            info = {**info, **_heldout(model, tok, cfg, bf16)}
        return model, tok, {**info, "cached": True, "path": str(path)}
    t0 = time.perf_counter()
    loss, steps_run, checks = _train_sft(model, tok, cfg, bf16, show)
    train_s = time.perf_counter() - t0
    info = {
        "key": cfg.warmstart_key(),
        "steps": steps_run,
        "final_loss": loss,
        "early_stop_checks": checks,
        **_heldout(model, tok, cfg, bf16),
        "train_seconds": train_s,
        "device": str(device),
        "config": {"task": asdict(cfg.task), "model": asdict(cfg.model), "warmstart": asdict(cfg.warmstart)},
    }
    if use_cache:
        save_warm_start(cfg, model, info)
    return model, tok, {**info, "cached": False, "path": str(path)}


def save_warm_start(cfg: LabConfig, model: nn.Module, info: dict[str, Any]) -> Path:
    """Write ``model`` and ``info`` as ``cfg``'s cached warm start (atomically).

    A cache that cannot be written costs only the cache: a warning on stderr, and
    the caller keeps its trained model.
    """
    path = cache_path(cfg)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save({"model": model.state_dict(), "info": info}, tmp)
        os.replace(tmp, path)
    except OSError as err:
        print(f"warning: could not cache the warm start in {path} ({err.strerror or err}); this run goes on",
              file=sys.stderr)
    return path

