"""Command line: ``python -m maxpo.lab {train,eval,compare} ...`` (``--help`` on each).

Examples::

    python -m maxpo.lab train --preset smoke --method maxpo --out runs/smoke
    python -m maxpo.lab train --preset smoke --out runs/smoke --resume
    python -m maxpo.lab eval --run runs/smoke
    python -m maxpo.lab compare --preset gpu --methods grpo,pkpo_loo1,maxpo --seeds 0,1,2 \\
        --work-dir runs/gpu --out book/data/lab/gpu_compare.json
    torchrun --nproc_per_node 2 -m maxpo.lab train --preset smoke --device cpu --out runs/ddp
    python -m maxpo.lab train --preset smoke --model-path /path/to/local/hf-model --out runs/own
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import maxpo
from maxpo.lab.config import AGGREGATIONS, PRESETS, REWARDS, LabConfig, load_config, preset
from maxpo.lab.train import DeviceUnavailable

__all__ = ["main", "build_parser", "config_from_args"]

# (flag, section, field, type, help)
_OVERRIDES: list[tuple[str, str | None, str, Any, str]] = [
    ("--method", "rl", "method", str, f"advantage estimator: {', '.join(maxpo.METHODS)}"),
    ("--k", "rl", "k", int, "the K of pass@K / max@K the estimator targets"),
    ("--reward", "rl", "reward", str, f"reward: {' or '.join(REWARDS)} (partial credit, for max@K)"),
    ("--steps", "rl", "steps", int, "RL steps"),
    ("--lr", "rl", "lr", float, "RL learning rate (Adam)"),
    ("--prompts-per-step", "rl", "prompts_per_step", int, "G: prompts per step (all processes together)"),
    ("--samples-per-prompt", "rl", "samples_per_prompt", int, "B: answers sampled per prompt (the group)"),
    ("--updates-per-batch", "rl", "updates_per_batch", int, "optimizer steps per sampled batch (PPO epochs)"),
    ("--clip-eps", "rl", "clip_eps", float, "PPO ratio clipping (acts when updates-per-batch > 1); 0 = off"),
    ("--kl-coef", "rl", "kl_coef", float, "weight of the KL penalty to the warm-start model; 0 = off"),
    ("--max-grad-norm", "rl", "max_grad_norm", float, "gradient clipping of the global norm; 0 = off"),
    ("--micro-batch", "rl", "micro_batch", int, "answers per forward/backward pass of an update; 0 = all at once"),
    ("--aggregation", "rl", "aggregation", str, f"loss aggregation: {' or '.join(AGGREGATIONS)}"),
    ("--max-new-tokens", "rl", "max_new_tokens", int, "longest sampled answer"),
    ("--warmstart-steps", "warmstart", "steps", int, "supervised warm-start steps (0 = none)"),
    ("--eval-every", "eval", "every", int, "steps between held-out evaluations"),
    ("--eval-prompts", "eval", "prompts", int, "held-out puzzles per evaluation"),
    ("--eval-samples", "eval", "samples", int, "answers per held-out puzzle (n >= every eval k)"),
    ("--model-path", "model", "hf_path", str, "a local Hugging Face model directory (model + tokenizer) "
     "to use instead of the tiny GPT; the pretrained preset needs it"),
    ("--seed", None, "seed", int, "RL seed (prompts and sampling)"),
    ("--device", None, "device", str, "cpu, cuda, cuda:N or auto"),
    ("--threads", None, "threads", int, "torch CPU threads (none: torch's default)"),
    ("--checkpoint-every", None, "checkpoint_every", int, "steps between checkpoints"),
]
#: The flags that make sense for ``eval`` (the rest shape training only).
_EVAL_FLAGS = ("--eval-prompts", "--eval-samples", "--max-new-tokens", "--model-path", "--device", "--threads")


def _default_help(section: str | None, name: str) -> str:
    """``(default: the preset's: smoke 80, cpu 300, ...)`` for ``--help``; ``(default: none)`` if no preset sets it."""
    values = {}
    for pname in PRESETS:
        cfg = preset(pname)
        values[pname] = getattr(cfg if section is None else getattr(cfg, section), name)
    if all(v is None for v in values.values()):
        return "(default: none)"
    shown = ", ".join(f"{pname} {'none' if v is None else v}" for pname, v in values.items())
    return f"(default: the preset's: {shown})"


class _OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, ``error: ...`` with where to find help, and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {' '.join(message.split())} (see {self.prog} --help)\n")


def _add_config_args(p: argparse.ArgumentParser, flags: Sequence[str] | None = None, preset_help: str = "") -> None:
    p.add_argument("--preset", default=None, choices=sorted(PRESETS),
                   help=preset_help or "starting configuration (default: smoke)")
    p.add_argument("--config", type=Path, help="a config.json (as written in a run directory) instead of a preset")
    for flag, section, name, typ, help_ in _OVERRIDES:
        if flags is not None and flag not in flags:
            continue
        p.add_argument(flag, type=typ, default=None, help=f"{help_} {_default_help(section, name)}")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast (default: on for CUDA, off for CPU)")
    p.add_argument("--no-progress", action="store_true",
                   help="one line per evaluation on stderr instead of progress bars")


def config_from_args(args: argparse.Namespace, saved: Path | None = None) -> LabConfig:
    """The base configuration with the command line's overrides applied.

    The base is ``--config`` if given, else ``--preset`` if given, else the saved
    ``config.json`` at ``saved`` (a run being resumed or evaluated) if given, else
    the smoke preset.
    """
    if args.config:
        cfg = load_config(args.config)
    elif args.preset:
        cfg = preset(args.preset)
    elif saved is not None:
        cfg = load_config(saved)
    else:
        cfg = preset("smoke")
    for flag, section, name, _, _ in _OVERRIDES:
        value = getattr(args, flag[2:].replace("-", "_"), None)
        if value is None:
            continue
        if section is None:
            cfg = dataclasses.replace(cfg, **{name: value})
        else:
            cfg = dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section), **{name: value})})
    if args.bf16 is not None:
        cfg = dataclasses.replace(cfg, bf16=args.bf16)
    return cfg


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m maxpo.lab``."""
    top = _OneLineParser(
        prog="python -m maxpo.lab", allow_abbrev=False,
        description="The MaxPO lab: warm-start a small language model on countdown puzzles, then train it with "
        "group-based RL whose advantage estimator is a switch (MaxPO, PKPO, GRPO, ...), and evaluate pass@k / max@k.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="presets: smoke (CPU, one core: one run about 20 s with its warm start, the default 3 x 3 comparison "
        "about 1 minute once the warm start is cached; measured on an idle 2-core AMD EPYC, and longer in "
        "proportion to the machine's load), cpu (the longer CPU comparison), gpu (one GPU), pretrained (a local "
        "Hugging Face model: --model-path DIR).\n"
        "Warm starts are cached in $MAXPO_LAB_CACHE (default ~/.cache/maxpo/lab); "
        "copy or move its files to reuse them.\n"
        "Multi-GPU / multi-node: launch the same command with torchrun.",
    )
    sub = top.add_subparsers(dest="command", required=True, parser_class=_OneLineParser)
    p = sub.add_parser("train", allow_abbrev=False, help="warm start (cached) + RL for one method and seed")
    _add_config_args(p, preset_help="starting configuration "
                                    "(default: smoke; with --resume: the run's saved config.json)")
    p.add_argument("--out", type=Path, required=True, help="run directory (config, metrics.jsonl, checkpoint)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint, with its saved configuration "
                        "(--steps may grow it)")

    p = sub.add_parser("eval", allow_abbrev=False,
                       help="evaluate a run's checkpoint (or the warm start) on held-out puzzles")
    p.add_argument("--run", type=Path, help="a run directory: its weights and its saved configuration (the "
                   "evaluation flags below may change the evaluation); no warm start is trained. Without it the "
                   "preset's warm-start model is evaluated")
    _add_config_args(p, flags=_EVAL_FLAGS, preset_help="configuration when no --run is given (default: smoke); "
                                                       "not with --run")
    p.add_argument("--ks", type=str, default=None, help="comma-separated k values (default: the config's)")

    p = sub.add_parser("compare", allow_abbrev=False,
                       help="several methods x seeds from one warm start; gathered results as JSON")
    # --method and --seed are per run: a comparison takes the lists --methods and --seeds instead
    _add_config_args(p, flags=[f for f, *_ in _OVERRIDES if f not in ("--method", "--seed")])
    p.add_argument("--methods", default="grpo,pkpo_loo1,maxpo",
                   help="comma-separated methods (default: grpo,pkpo_loo1,maxpo)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default: 0,1,2)")
    p.add_argument("--work-dir", type=Path, required=True, help="where the runs live (one directory each)")
    p.add_argument("--out", type=Path, required=True,
                   help="JSON file for the gathered results (rewritten after each run)")
    p.add_argument("--label", default="", help="label stored with the results (default: device and preset)")
    p.add_argument("--resume", action="store_true",
                   help="skip complete runs, continue interrupted ones, start the rest")
    return top


def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated integers, got {text!r}") from None


def _eval_command(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from maxpo.lab.checkpoint import CHECKPOINT_NAME, load_model_weights
    from maxpo.lab.evaluate import evaluate
    from maxpo.lab.seeding import derive_seed
    from maxpo.lab.task import heldout_puzzles
    from maxpo.lab.train import resolve_device, validate
    from maxpo.lab.warmstart import build_policy, warm_start

    saved = None
    if args.run:
        if args.preset or args.config:
            flag = "--preset" if args.preset else "--config"
            raise ValueError(f"eval --run {args.run} uses the run's saved configuration; {flag} does not apply "
                             "(only the evaluation flags do, e.g. --eval-prompts)")
        saved = args.run / "config.json"
        if not saved.is_file():
            raise ValueError(f"{args.run} is not a run directory (no config.json)")
        if not (args.run / CHECKPOINT_NAME).is_file():
            raise ValueError(f"{args.run} has no {CHECKPOINT_NAME} yet")
    cfg = config_from_args(args, saved)
    ks = _ints(args.ks, "--ks") if args.ks else list(cfg.eval.ks)
    cfg = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, ks=tuple(ks)))
    validate(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    bf16 = cfg.bf16 if cfg.bf16 is not None else device.type == "cuda"
    step = 0
    if args.run:  # the run's own weights: the warm start is not needed (nor trained)
        model, tok = build_policy(cfg, device)
        model.eval()
        step = load_model_weights(args.run / CHECKPOINT_NAME, model)
    else:
        model, tok, _ = warm_start(cfg, device, bf16, show=not args.no_progress)
    ev = evaluate(model, tok, heldout_puzzles(cfg.task, cfg.eval.prompts, cfg.eval.seed), cfg.eval.samples, ks,
                  cfg.rl.max_new_tokens, derive_seed(cfg.eval.seed, "eval", step), bf16)
    return {"run": str(args.run) if args.run else None, "step": step,
            **{k: v for k, v in ev.to_dict().items() if k != "correct_counts"}}


def _sigterm_as_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _output_dir(args: argparse.Namespace) -> Path | None:
    """The directory a command creates (train's run, compare's work directory); ``None`` for eval."""
    return args.out if args.command == "train" else args.work_dir if args.command == "compare" else None


def _remove_if_left_empty(path: Path | None, existed: bool) -> None:
    """After a refused command: remove the directory it created if nothing of a run is in it.

    Only a directory that did not exist before the command, and holds nothing but
    the ``config.json`` a run writes first, is removed: no result is ever deleted.
    """
    if path is None or existed or not path.is_dir():
        return
    entries = list(path.iterdir())
    if all(e.is_file() and e.name == "config.json" for e in entries):
        for e in entries:
            e.unlink()
        path.rmdir()


def _interrupt_message(err: KeyboardInterrupt, args: argparse.Namespace, command: list[str]) -> str:
    """What was saved and the whole command that continues (an interruption before any run started included)."""
    if str(err):  # a run or a comparison said it
        return str(err)
    from maxpo.lab.compare import resume_compare_command
    from maxpo.lab.train import resume_train_command

    if args.command == "train" and (args.out / "config.json").is_file():
        return f"interrupted before the first step; continue with: {resume_train_command(args.out)}"
    if args.command == "compare" and args.work_dir.is_dir():
        return f"interrupted; continue with: {resume_compare_command(command)}"
    return "interrupted before anything was written; run the same command again"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 done, 2 bad input or configuration, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    command = ["python", "-m", "maxpo.lab", *(sys.argv[1:] if argv is None else argv)]
    out_dir = _output_dir(args)
    existed = out_dir is not None and out_dir.exists()
    previous = None
    if threading.current_thread() is threading.main_thread():  # SIGTERM (timeout, schedulers) acts like Ctrl-C
        previous = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    try:
        if args.command == "train":
            from maxpo.lab.train import train

            saved = args.out / "config.json" if args.resume and (args.out / "config.json").is_file() else None
            res = train(config_from_args(args, saved), args.out, resume=args.resume, show_progress=not args.no_progress,
                        argv=command)
            if res.is_main:
                final = {k: v for k, v in res.summary["final_eval"].items() if k != "correct_counts"}
                print(json.dumps({"run_dir": str(res.run_dir), "final_eval": final}, indent=2))
        elif args.command == "eval":
            print(json.dumps(_eval_command(args), indent=2))
        else:
            from maxpo.lab.compare import compare

            methods = [m for m in args.methods.split(",") if m]
            comparison = compare(config_from_args(args), methods, _ints(args.seeds, "--seeds"),
                          args.work_dir, args.out, resume=args.resume, show_progress=not args.no_progress, argv=command,
                          label=args.label)
            summary = comparison["summary"]
            means = {m: {k: round(v["mean"], 4) for k, v in s["final"].items()} for m, s in summary.items()}
            print(json.dumps(means, indent=2))
    except (ValueError, OSError, DeviceUnavailable) as err:
        _remove_if_left_empty(out_dir, existed)
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        print(f"\n{_interrupt_message(err, args, command)}", file=sys.stderr, flush=True)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0
