"""Checks that run before any training, so a run that cannot finish fails in its first second.

Each raises ``ValueError`` (or ``OSError`` for a directory) with a one-line
message naming the setting or the path at fault.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from maxpo.lab.config import LabConfig
from maxpo.lab.task import TaskConfig, heldout_puzzles

__all__ = ["check_writable_dir", "longest_prompt_tokens", "check_context", "check_heldout"]


def check_writable_dir(path: str | Path, what: str) -> Path:
    """Make sure ``path`` is a directory we can write files in, or can be created as one, without creating it.

    Nothing is created, so a command refused later leaves no empty directory
    behind: the check writes and removes a probe file in ``path`` if it exists,
    else in its nearest existing parent (where ``path`` would be created), the
    only check that is right for every file system and user (root included).

    Raises:
        ValueError: ``path`` or one of its parents is a file, or it is not writable;
            the message names ``what`` (e.g. ``"--out"``) and the path.
    """
    path = Path(path)
    existing = next((parent for parent in [path, *path.parents] if parent.exists()), Path("."))
    if not existing.is_dir():
        raise ValueError(f"{what} {str(path)!r}: {str(existing)!r} is a file, not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".maxpo-probe-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ValueError(f"{what} {str(path)!r} is not a writable directory ({err.strerror or err})") from None
    return path


def longest_prompt_tokens(task: TaskConfig) -> int:
    """Characters of the longest possible prompt ``"a,b,c|T="`` of ``task``, plus one for BOS."""
    n = task.n_numbers
    return n * len(str(task.max_number)) + (n - 1) + 1 + len(str(task.max_target)) + 1 + 1


def check_context(cfg: LabConfig, context: int | None) -> None:
    """The longest prompt plus ``max_new_tokens`` must fit the model's context ``context`` (``None``: unknown).

    For a Hugging Face model the prompt's token count is at most its character
    count plus a BOS token for the character-level tokenizers the lab is built for;
    subword tokenizers need fewer tokens, so the check is conservative.
    """
    if context is None:
        return
    need = longest_prompt_tokens(cfg.task) + cfg.rl.max_new_tokens
    if need > context:
        raise ValueError(
            f"rl.max_new_tokens={cfg.rl.max_new_tokens} plus the longest prompt "
            f"({longest_prompt_tokens(cfg.task)} tokens) "
            f"is {need}, more than the model's context of {context} positions; "
            "lower --max-new-tokens or raise model.max_len"
        )


def check_heldout(cfg: LabConfig) -> None:
    """The held-out split has enough distinct puzzles for the evaluation (and the pass@k curve)."""
    need = max(cfg.eval.prompts, cfg.eval.curve_prompts)
    try:
        heldout_puzzles(cfg.task, need, cfg.eval.seed)
    except ValueError:
        raise ValueError(
            f"the evaluation needs {need} distinct held-out puzzles but the task {cfg.task} has fewer; "
            f"lower --eval-prompts or make the task larger"
        ) from None
