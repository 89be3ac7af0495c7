"""The RL loop: sample G prompts x B answers, verify, compute advantages, update.

One step (``step`` counts completed steps, from 1):

1. draw G training puzzles from the stream ``(seed, "prompts", step)``; this
   process takes a contiguous slice of them (all B answers of a puzzle together);
2. sample B answers per puzzle with the KV cache, from the uniforms
   ``(seed, "sample", step)`` drawn for the global batch;
3. score them with the verifier (binary or partial-credit reward);
4. ``maxpo.advantages(rewards, K, method)`` per group, times
   :func:`maxpo.lab.loss.advantage_scale`;
5. ``updates_per_batch`` Adam steps on the clipped policy-gradient loss (+ KL).

Evaluation on held-out puzzles at step 0, every ``eval.every`` steps and at the
end; metrics to ``metrics.jsonl``; a checkpoint every ``checkpoint_every`` steps,
at the end, and when interrupted (Ctrl-C or SIGTERM, finished between steps).
``resume=True`` reloads the checkpoint and continues; the result is the
uninterrupted run's. The pass@k-versus-k curve (``eval.curve_*``) is measured at
step 0 and at the last step.

Run directory layout: ``config.json``, ``warmstart.json``, ``metrics.jsonl``,
``checkpoint.pt``, and ``summary.json`` once the run is complete.
"""
from __future__ import annotations

import contextlib
import copy
import json
import shlex
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

import maxpo
from maxpo.lab.checkpoint import CHECKPOINT_NAME, load_checkpoint, read_checkpoint, save_checkpoint
from maxpo.lab.config import AGGREGATIONS, REWARDS, LabConfig, load_config
from maxpo.lab.distributed import DistInfo, all_reduce_sum, barrier, broadcast_object, init_distributed, shard_range
from maxpo.lab.evaluate import encode_prompt, evaluate, passk_curve_ks
from maxpo.lab.loss import advantage_scale, policy_loss, scaled_advantages
from maxpo.lab.metrics import MetricsLog, read_metrics
from maxpo.lab.preflight import check_context, check_heldout, check_writable_dir
from maxpo.lab.progress import progress
from maxpo.lab.provenance import provenance, utc_now
from maxpo.lab.sampling import micro_batches, sample, token_logprobs
from maxpo.lab.seeding import derive_seed, uniforms
from maxpo.lab.task import heldout_puzzles, sample_puzzles, score_batch
from maxpo.lab.warmstart import build_policy, cache_dir, warm_start

__all__ = ["RunResult", "DeviceUnavailable", "Interrupted", "resume_train_command", "resolve_device", "validate",
           "train", "clip_gradients"]


class DeviceUnavailable(RuntimeError):
    """The configuration asks for a device this machine does not have."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a run; the message says what was saved and how to continue.

    ``state`` says what is on disk, ``resume`` is the whole command that continues
    (``None`` when there is nothing to continue: run the same command again).
    ``compare`` re-raises a run's interruption with its own command.
    """

    def __init__(self, state: str, resume: str | None = None) -> None:
        self.state, self.resume = state, resume
        super().__init__(f"{state}; continue with: {resume}" if resume else f"{state}; run the same command again")


def resume_train_command(run_dir: Path) -> str:
    """The command that continues the run in ``run_dir``."""
    return f"python -m maxpo.lab train --out {shlex.quote(str(run_dir))} --resume"


@dataclass
class RunResult:
    """What a finished (or already complete) run returns."""

    run_dir: Path
    summary: dict[str, Any]
    is_main: bool = True


def resolve_device(name: str) -> torch.device:
    """``"cpu"``, ``"cuda"``/``"cuda:N"`` or ``"auto"`` to a device; a clear error when CUDA is absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceUnavailable(
                f"CUDA was asked for (device {name!r}, e.g. by --preset gpu) but this torch "
                f"({torch.__version__}) sees no CUDA device. Use --device cpu, or --preset smoke / cpu."
            )
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {name!r}")


def validate(cfg: LabConfig) -> None:
    """Reject a configuration that cannot run, with a message that names the problem.

    Checks the method against the group size and K by calling
    :func:`maxpo.advantages` on a dummy group (so its own message says why), the
    reward kind, the aggregation, the batch sizes and the evaluation ks.
    """
    rl, ev = cfg.rl, cfg.eval
    if rl.k < 1:
        raise ValueError(f"rl.k (--k) must be >= 1, got {rl.k}")
    if cfg.threads is not None and cfg.threads < 1:
        raise ValueError(f"threads (--threads) must be >= 1, got {cfg.threads}")
    if cfg.preset == "pretrained" and not cfg.model.hf_path:
        raise ValueError("preset 'pretrained' needs --model-path DIR (a local Hugging Face model directory)")
    if rl.max_grad_norm < 0:
        raise ValueError(f"rl.max_grad_norm must be >= 0 (0: no clipping), got {rl.max_grad_norm}")
    if rl.reward not in REWARDS:
        raise ValueError(f"reward must be one of {REWARDS}, got {rl.reward!r}")
    if rl.aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {rl.aggregation!r}")
    if rl.micro_batch < 0:
        raise ValueError(f"rl.micro_batch must be >= 0 (0: the whole batch at once), got {rl.micro_batch}")
    for name in ("prompts_per_step", "samples_per_prompt", "steps", "updates_per_batch", "max_new_tokens"):
        if getattr(rl, name) < 1:
            raise ValueError(f"rl.{name} must be >= 1, got {getattr(rl, name)}")
    if rl.lr <= 0:
        raise ValueError(f"rl.lr must be positive, got {rl.lr}")
    if not 0 <= rl.clip_eps < 1:
        raise ValueError(f"rl.clip_eps must be in [0, 1), got {rl.clip_eps}")
    if rl.kl_coef < 0:
        raise ValueError(f"rl.kl_coef must be >= 0, got {rl.kl_coef}")
    advantage_scale(rl.method, rl.samples_per_prompt, rl.k)  # unknown method -> ValueError listing the names
    dummy = torch.tensor([[0.0, 1.0] * (rl.samples_per_prompt // 2) + [0.0] * (rl.samples_per_prompt % 2)])
    if rl.reward == "partial":
        dummy = dummy * 0.5 + 0.25
    try:
        maxpo.advantages(dummy, rl.k, method=rl.method)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"advantage method {rl.method!r} cannot run with K={rl.k}, B={rl.samples_per_prompt} "
            f"samples per prompt and {rl.reward} rewards: {err}"
        ) from None
    if ev.prompts < 1 or ev.samples < 1 or ev.every < 1:
        raise ValueError(f"eval prompts, samples and every must be >= 1, got {ev.prompts}, {ev.samples}, {ev.every}")
    bad = [k for k in ev.ks if not 1 <= k <= ev.samples]
    if bad:
        raise ValueError(f"eval ks {bad} need 1 <= k <= eval samples={ev.samples} (pass@k needs n >= k samples)")
    if cfg.checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1, got {cfg.checkpoint_every}")
    if ev.curve_samples < 0 or ev.curve_prompts < 0 or ev.gradvar_repeats < 0 or ev.gradvar_prompts < 1:
        raise ValueError("eval curve_prompts, curve_samples and gradvar_repeats must be >= 0, gradvar_prompts >= 1")
    if bool(ev.curve_samples) != bool(ev.curve_prompts):
        raise ValueError("eval curve_prompts and curve_samples must both be 0 (no curve) or both positive")
    if not cfg.model.hf_path:
        check_context(cfg, cfg.model.max_len)
    check_heldout(cfg)


class _DeferredInterrupt:
    """Turn Ctrl-C (SIGINT) and SIGTERM into a request honoured between steps, so the checkpoint is clean.

    All processes agree on the request (an all-reduce per step), so they stop at
    the same step. Outside the main thread (where no handler can be installed)
    Ctrl-C behaves as usual.
    """

    def __init__(self) -> None:
        self.flag = False
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.flag = True

    def requested(self, dist: DistInfo) -> bool:
        """Whether any process was interrupted (collective when several processes run)."""
        if not dist.active:
            return self.flag
        return bool(all_reduce_sum(torch.tensor([float(self.flag)]), dist)[0] > 0)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _config_diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the fields where two config dicts differ."""
    out: list[str] = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out += _config_diff(x, y, f"{prefix}{key}.")
        elif x != y:
            out.append(f"{prefix}{key}")
    return out


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; ``ValueError`` naming the file when it is truncated or not JSON."""
    try:
        data = json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f"{path}: not valid JSON ({err}); the file is truncated or corrupt") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


def _check_history(path: Path, done: int) -> None:
    """A run resumed after ``done`` steps must still have their records: refuse rather than drop them.

    The metrics file must hold the step-0 evaluation and one training record for
    each of the steps 1..``done`` (what the checkpoint has already seen). An empty
    or cut-back file would otherwise be rewritten from the checkpoint on, and the
    run's history lost without a word.

    Raises:
        ValueError: naming the file and the first missing record.
    """
    if done <= 0:
        return  # nothing was trained yet: the file is rebuilt from step 0
    if not path.is_file():
        raise ValueError(f"{path} is missing but the checkpoint is at step {done}: the run's history would be lost; "
                         "restore the file, or start a new run with another --out")
    records = read_metrics(path, allow_truncated_tail=True, quiet=True)
    have_eval0 = any(r.get("kind") == "eval" and r.get("step") == 0 for r in records)
    trained = {r.get("step") for r in records if r.get("kind") == "train"}
    missing = [s for s in range(1, done + 1) if s not in trained]
    if not have_eval0 or missing:
        what = "the step-0 evaluation" if not have_eval0 else f"the training record of step {missing[0]}"
        raise ValueError(f"{path} lacks {what} ({len(records)} records for a checkpoint at step {done}; the file is "
                         "empty or truncated): resuming would lose the run's history; restore the file, or start a "
                         "new run with another --out")


def _prepare_run_dir(cfg: LabConfig, run_dir: Path, resume: bool, dist: DistInfo) -> LabConfig:
    """Create or check the run directory; on resume return the saved config (steps may grow)."""
    cfg_path = run_dir / "config.json"
    if resume:
        if not cfg_path.is_file():
            raise FileNotFoundError(f"--resume: {run_dir} has no config.json; nothing to resume")
        saved = load_config(cfg_path)
        if saved.with_rl(steps=cfg.rl.steps) != cfg:
            diff = _config_diff(saved.with_rl(steps=cfg.rl.steps).to_dict(), cfg.to_dict())
            raise ValueError(f"--resume with a different configuration than {cfg_path} "
                             f"(differs in: {', '.join(diff)}); only rl.steps may change")
        done = _read_json(run_dir / "summary.json")["steps"] if (run_dir / "summary.json").is_file() else 0
        if (run_dir / CHECKPOINT_NAME).is_file():
            done = max(done, int(read_checkpoint(run_dir / CHECKPOINT_NAME)["step"]))
        _check_history(run_dir / "metrics.jsonl", done)
        if cfg.rl.steps < done:
            raise ValueError(f"--steps {cfg.rl.steps} is below the {done} steps {run_dir} already ran "
                             "(its checkpoint's "
                             f"step {done}); a run cannot be shortened, its evaluations would carry the wrong step")
        if dist.main and saved.rl.steps != cfg.rl.steps:
            cfg_path.write_text(json.dumps(cfg.to_dict(), indent=2))
        return cfg
    if (run_dir / CHECKPOINT_NAME).exists() or (run_dir / "metrics.jsonl").exists():
        raise FileExistsError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    if dist.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        cfg_path.write_text(json.dumps(cfg.to_dict(), indent=2))
    return cfg


def train(
    cfg: LabConfig, run_dir: str | Path, resume: bool = False, show_progress: bool = True, argv: list[str] | None = None
) -> RunResult:
    """Run (or resume) one lab run in ``run_dir`` (see the module docstring)."""
    validate(cfg)
    run_dir = Path(run_dir)
    device = resolve_device(cfg.device)
    check_writable_dir(run_dir, "run directory (--out)")
    if cfg.warmstart.steps > 0:
        check_writable_dir(cache_dir(), "warm-start cache ($MAXPO_LAB_CACHE)")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    dist = init_distributed(device.type)
    if device.type == "cuda" and dist.active:
        device = torch.device("cuda", dist.local_rank)
    bf16 = cfg.bf16 if cfg.bf16 is not None else device.type == "cuda"
    summary_path = run_dir / "summary.json"
    barrier(dist)
    cfg = _prepare_run_dir(cfg, run_dir, resume, dist)
    barrier(dist)
    if resume and summary_path.is_file():
        done = _read_json(summary_path)
        if done["config"]["rl"]["steps"] == cfg.rl.steps:
            return RunResult(run_dir, done, dist.main)
    t_start = time.perf_counter()
    started = utc_now()

    try:
        if dist.main:
            model, tok, ws_info = warm_start(cfg, device, bf16, show=show_progress)
        else:
            model, tok = build_policy(cfg, device)
            model.eval()
            ws_info = None
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted during the warm start: nothing was cached and {run_dir} holds only "
                          "config.json (the warm start is trained again)", resume_train_command(run_dir)) from None
    ws_info = broadcast_object(ws_info, dist)
    if dist.main:
        (run_dir / "warmstart.json").write_text(json.dumps(ws_info, indent=2))
    ddp = DDP(model, device_ids=[device.index] if device.type == "cuda" else None) if dist.active else model
    ref = None
    if cfg.rl.kl_coef > 0:
        ref = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.rl.lr, betas=(0.9, 0.999), eps=1e-8,
                           **({"fused": True} if device.type == "cuda" else {}))
    log = MetricsLog(run_dir / "metrics.jsonl", enabled=dist.main)
    start = 0
    if resume and (run_dir / CHECKPOINT_NAME).is_file():
        start, _ = load_checkpoint(run_dir / CHECKPOINT_NAME, model, opt)
        log.truncate_after(start)
    elif resume:
        log.truncate_after(-1)
    barrier(dist)

    heldout = heldout_puzzles(cfg.task, cfg.eval.prompts, cfg.eval.seed)
    curve_ks = passk_curve_ks(cfg.eval.curve_samples)
    rl = cfg.rl
    scale = advantage_scale(rl.method, rl.samples_per_prompt, rl.k)
    totals = {"t_step": 0.0, "t_sample": 0.0, "t_reward": 0.0, "t_adv": 0.0, "t_update": 0.0, "samples": 0, "tokens": 0}

    def run_eval(step: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        ev = evaluate(model, tok, heldout, cfg.eval.samples, cfg.eval.ks, rl.max_new_tokens,
                      derive_seed(cfg.eval.seed, "eval", step), bf16, dist)
        rec = {"kind": "eval", "step": step, **ev.to_dict(), "t_eval": time.perf_counter() - t0}
        log.append(rec)
        if dist.main and not show_progress:  # without progress bars: one line per evaluation
            print(f"{rl.method} seed {cfg.seed} step {step}/{rl.steps}: pass@1 {rec['pass@1']:.3f}"
                  + "".join(f" pass@{k} {rec[f'pass@{k}']:.3f}" for k in cfg.eval.ks if k > 1)
                  + f" ({rec['t_eval']:.1f} s, {time.perf_counter() - t_start:.0f} s since start)",
                  file=sys.stderr, flush=True)
        return rec

    def run_curve(step: int) -> None:
        if not curve_ks:
            return
        ev = evaluate(model, tok, heldout[: cfg.eval.curve_prompts], cfg.eval.curve_samples, curve_ks,
                      rl.max_new_tokens,
                      derive_seed(cfg.eval.seed, "curve", step), bf16, dist)
        log.append({"kind": "curve", "step": step, **ev.to_dict()})

    def checkpoint(step: int) -> None:
        if dist.main:
            save_checkpoint(run_dir / CHECKPOINT_NAME, model, opt, step, {"world": dist.world, "time": utc_now()})
        barrier(dist)

    if start == 0:
        try:
            last_eval: dict[str, Any] | None = run_eval(0)
            run_curve(0)
        except KeyboardInterrupt:
            raise Interrupted("interrupted during the step-0 evaluation (the warm start is cached)",
                              resume_train_command(run_dir)) from None
    else:  # the latest evaluation already logged (the metrics file was cut back to the checkpoint)
        logged = read_metrics(run_dir / "metrics.jsonl", "eval") if (run_dir / "metrics.jsonl").is_file() else []
        last_eval = broadcast_object(logged[-1] if logged else None, dist)
    bar = progress(range(start + 1, rl.steps + 1), desc=f"{rl.method} seed {cfg.seed}",
                   disable=not (show_progress and dist.main))
    with _DeferredInterrupt() as interrupt:
        for step in bar:
            rec = _rl_step(cfg, step, ddp, model, ref, opt, tok, scale, bf16, device, dist)
            for key in totals:
                totals[key] += rec[key]
            log.append(rec)
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(reward=f"{rec['reward']:.3f}", pass1=f"{last_eval['pass@1']:.3f}" if last_eval else "-")
            if step % cfg.eval.every == 0 or step == rl.steps:
                last_eval = run_eval(step)
            stop = interrupt.requested(dist)
            if step % cfg.checkpoint_every == 0 or step == rl.steps or stop:
                checkpoint(step)
            if stop:
                raise Interrupted(f"interrupted: checkpoint of step {step} written to {run_dir}",
                                  resume_train_command(run_dir))
    if last_eval is None or last_eval["step"] != rl.steps:
        last_eval = run_eval(rl.steps)
    have_curve = dist.main and any(r["step"] == rl.steps for r in read_metrics(run_dir / "metrics.jsonl", "curve"))
    if curve_ks and not broadcast_object(have_curve, dist):
        run_curve(rl.steps)
    # every process's parameter checksum: DDP keeps them identical, and the summary shows it
    sums = torch.zeros(dist.world, dtype=torch.float64)
    sums[dist.rank] = sum(float(p.detach().double().sum()) for p in model.parameters())
    sums = all_reduce_sum(sums, dist)
    summary = {
        "config": cfg.to_dict(),
        "param_sum_by_rank": sums.tolist(),
        "warmstart": ws_info,
        "final_eval": last_eval,
        "steps": rl.steps,
        "resumed_from": start,
        "timing_this_session": totals,
        "wall_seconds_this_session": time.perf_counter() - t_start,
        "started": started,
        "finished": utc_now(),
        "world_size": dist.world,
        "provenance": provenance(device, argv),
    }
    if dist.main:
        summary_path.write_text(json.dumps(summary, indent=2))
    barrier(dist)
    return RunResult(run_dir, summary, dist.main)


def clip_gradients(model: torch.nn.Module, max_norm: float) -> tuple[float, bool]:
    """Clip the global gradient norm of ``model`` to ``max_norm`` (0: no clipping).

    Returns the norm *before* clipping and whether clipping changed the gradient
    (the norm exceeded ``max_norm > 0``).
    """
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return 0.0, False
    if max_norm > 0:
        norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm))
        return norm, norm > max_norm
    return float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))), False


def _rl_step(cfg: LabConfig, step: int, ddp: torch.nn.Module, model: torch.nn.Module, ref: torch.nn.Module | None,
             opt: torch.optim.Optimizer, tok: Any, scale: float, bf16: bool, device: torch.device,
             dist: DistInfo) -> dict[str, Any]:
    """One RL step (see the module docstring); returns its metrics record."""
    rl = cfg.rl
    g_all, b = rl.prompts_per_step, rl.samples_per_prompt
    t0 = time.perf_counter()
    puzzles = sample_puzzles(cfg.task, g_all, derive_seed(cfg.seed, "prompts", step), "train")
    lo, hi = shard_range(g_all, dist)
    group = [p for p in puzzles[lo:hi] for _ in range(b)]
    u = uniforms(derive_seed(cfg.seed, "sample", step), g_all * b, rl.max_new_tokens)[lo * b : hi * b]
    roll = sample(model, [encode_prompt(tok, p) for p in group], u, tok.eos_id, tok.pad_id, bf16)
    _sync(device)
    t1 = time.perf_counter()
    scores = score_batch(group, [tok.decode(a) for a in roll.answers])
    correct = torch.tensor([s.correct for s in scores], dtype=torch.float32).view(-1, b)
    partial = torch.tensor([s.partial for s in scores], dtype=torch.float32).view(-1, b)
    rewards = correct if rl.reward == "binary" else partial
    t2 = time.perf_counter()
    adv = scaled_advantages(rewards, rl.k, rl.method, scale)
    t3 = time.perf_counter()
    adv_flat = adv.reshape(-1).to(device)
    mask = roll.completion_mask
    local_tokens = int(mask.sum())
    if rl.aggregation == "sequence":
        denom = g_all / dist.world
        n_tokens = float(all_reduce_sum(torch.tensor(float(local_tokens)), dist))
    else:
        n_tokens = float(all_reduce_sum(torch.tensor(float(local_tokens)), dist))
        denom = n_tokens / dist.world
    # micro-batches of answers: the loss is a sum over answers with a global normaliser, so
    # accumulating the gradients of the pieces gives the gradient of the whole batch
    pieces = micro_batches(len(roll.answers), rl.micro_batch)
    ref_logp: list[torch.Tensor | None] = [None] * len(pieces)
    if ref is not None:
        with torch.no_grad():
            ref_logp = [token_logprobs(ref, roll.rows(a, z), bf16) for a, z in pieces]
    old_logp: list[torch.Tensor | None] = [None] * len(pieces)
    stats = {"loss": 0.0, "kl": 0.0, "clip_frac": 0.0, "grad_norm": 0.0, "grad_clipped": 0.0}
    n_local = max(local_tokens, 1)
    for _ in range(rl.updates_per_batch):
        opt.zero_grad(set_to_none=True)
        for j, (a, z) in enumerate(pieces):
            last = j == len(pieces) - 1
            sync = ddp.no_sync() if isinstance(ddp, DDP) and not last else contextlib.nullcontext()
            with sync:
                logp = token_logprobs(ddp, roll.rows(a, z), bf16)
                old = old_logp[j]
                if old is None:  # the first update runs on the sampling weights: these are the old log-probs
                    old = old_logp[j] = logp.detach()
                parts = policy_loss(logp, old, adv_flat[a:z], mask[a:z], rl.aggregation, denom, rl.clip_eps,
                                    ref_logp[j], rl.kl_coef)
                parts.loss.backward()
            share = float(mask[a:z].sum()) / n_local / rl.updates_per_batch
            stats["loss"] += float(parts.loss.detach()) / rl.updates_per_batch
            stats["kl"] += parts.kl * share
            stats["clip_frac"] += parts.clip_frac * share
        gn, clipped = clip_gradients(model, rl.max_grad_norm)
        opt.step()
        stats["grad_norm"] += gn / rl.updates_per_batch
        stats["grad_clipped"] += float(clipped) / rl.updates_per_batch
    _sync(device)
    t4 = time.perf_counter()
    g_local = hi - lo
    mixed = float(((correct.sum(-1) > 0) & (correct.sum(-1) < b)).sum())
    sums = all_reduce_sum(torch.tensor([float(correct.sum()), float(partial.sum()), float(roll.entropy.sum()),
                                        sum(s.well_formed for s in scores), mixed, float(adv.abs().sum()),
                                        float(g_local),
                                        float(adv.double().pow(2).sum())],
                                       dtype=torch.float64), dist)
    n = g_all * b
    t_step = t4 - t0
    return {
        "kind": "train",
        "step": step,
        "reward": float(sums[0] if rl.reward == "binary" else sums[1]) / n,
        "pass_rate": float(sums[0]) / n,
        "partial_mean": float(sums[1]) / n,
        "entropy": float(sums[2]) / max(n_tokens, 1.0),
        "well_formed": float(sums[3]) / n,
        "mixed_groups": float(sums[4]) / g_all,
        "adv_abs_mean": float(sums[5]) / n,
        "adv_rms": (float(sums[7]) / n) ** 0.5,
        "mean_length": n_tokens / n,
        **stats,
        "samples": n,
        "tokens": int(n_tokens),
        "t_step": t_step,
        "t_sample": t1 - t0,
        "t_reward": t2 - t1,
        "t_adv": t3 - t2,
        "t_update": t4 - t3,
        "samples_per_s": n / t_step,
        "tokens_per_s": n_tokens / t_step,
    }
