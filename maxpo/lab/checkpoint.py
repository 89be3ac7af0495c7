"""Checkpoints: model, optimizer and step, written atomically.

Together with the derived random streams (:mod:`maxpo.lab.seeding`) they are all
a run needs to continue exactly where it stopped: nothing else carries state
from one step to the next.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["save_checkpoint", "load_checkpoint", "load_model_weights", "read_checkpoint", "CHECKPOINT_NAME"]

CHECKPOINT_NAME = "checkpoint.pt"


def save_checkpoint(
    path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer, step: int, extra: dict[str, Any]
) -> None:
    """Write ``{model, optimizer, step, extra}`` to ``path`` (temp file, then rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "extra": extra}, tmp)
    os.replace(tmp, path)


def read_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """The checkpoint's contents; ``ValueError`` naming the file when it is empty, truncated or not a checkpoint.

    Raises:
        FileNotFoundError: no checkpoint at ``path``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: nothing to resume")
    try:
        blob = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for a damaged file
        # torch's own message runs to many lines of advice about weights_only; its kind is what helps here
        raise ValueError(f"{path}: cannot be read as a checkpoint; it is empty, truncated or corrupt "
                         f"(torch.load raised {type(err).__name__})") from None
    if not isinstance(blob, dict) or not {"model", "optimizer", "step"} <= set(blob):
        raise ValueError(f"{path}: not a lab checkpoint (expected the keys model, optimizer, step)")
    return blob


def load_model_weights(path: str | Path, model: nn.Module) -> int:
    """Load only the model's weights from a checkpoint; return its step (errors as :func:`read_checkpoint`)."""
    blob = read_checkpoint(path, next(model.parameters()).device)
    try:
        model.load_state_dict(blob["model"])
    except RuntimeError as err:
        # torch lists every mismatch on its own line; the first one, whole, says what kind of model it was
        problems = [line.strip() for line in str(err).splitlines()[1:] if line.strip()]
        first = problems[0].rstrip(".") if problems else " ".join(str(err).split())
        raise ValueError(f"{path}: its weights do not fit this model ({len(problems) or 1} mismatch(es); "
                         f"first: {first})") from None
    return int(blob["step"])


def load_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[int, dict[str, Any]]:
    """Restore ``model`` and ``optimizer`` in place; return ``(step, extra)`` (errors as :func:`read_checkpoint`)."""
    step = load_model_weights(path, model)
    blob = read_checkpoint(path, next(model.parameters()).device)
    optimizer.load_state_dict(blob["optimizer"])
    return step, blob.get("extra", {})
