"""Input checking shared by every estimator: one place that turns user data into
float tensors and says clearly what is wrong (which group, which value)."""
from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def group_label(flat_index: int, batch_shape: tuple[int, ...]) -> str:
    """Human-readable name of group ``flat_index`` in a batch of shape ``batch_shape``."""
    if len(batch_shape) == 0:
        return "the group"
    if len(batch_shape) == 1:
        return f"group {flat_index}"
    return f"group {tuple(int(i) for i in np.unravel_index(flat_index, batch_shape))}"


def as_reward_tensor(rewards: Any, name: str = "rewards") -> tuple[torch.Tensor, torch.dtype]:
    """Convert ``rewards`` to a tensor and return ``(tensor, output_dtype)``.

    Floating tensors keep their dtype and device. Integer and bool tensors, lists,
    tuples and numpy arrays become float64 (integer rewards are never truncated).
    Non-numeric data raises ``TypeError``; a scalar or an empty last dimension
    raises ``ValueError``.
    """
    if isinstance(rewards, torch.Tensor):
        t = rewards.detach()
    else:
        try:
            arr = np.asarray(rewards)
        except (ValueError, TypeError) as exc:  # ragged nested lists, etc.
            raise ValueError(
                f"{name} must be a rectangular array (last dimension = group); "
                f"for groups of different sizes pad them and pass a mask ({exc})"
            ) from None
        if arr.dtype == object or arr.dtype.kind in "USVOMm":
            raise TypeError(f"{name} must be numeric, got data of dtype {arr.dtype}")
        if arr.dtype.kind == "c":
            raise TypeError(f"{name} must be real, got complex dtype {arr.dtype}")
        t = torch.as_tensor(arr)
    if t.is_complex():
        raise TypeError(f"{name} must be real, got complex dtype {t.dtype}")
    if t.dtype.is_floating_point and t.dtype not in _FLOAT_DTYPES:  # float8 and the like: no sort or sum on CPU
        raise TypeError(f"{name} have dtype {t.dtype}; use float16, bfloat16, float32 or float64 (or integers, bool)")
    if t.dtype not in _FLOAT_DTYPES and (t.dtype == torch.bool or not t.dtype.is_floating_point):
        if t.dtype not in (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64):
            raise TypeError(f"{name} must be numeric, got dtype {t.dtype}")
        out_dtype = torch.float64
    elif isinstance(rewards, torch.Tensor):
        out_dtype = t.dtype
    else:
        out_dtype = torch.float64
    if t.dim() == 0:
        raise ValueError(f"{name} must have at least one dimension (the group), got a scalar")
    if t.shape[-1] == 0:
        raise ValueError(f"{name} has an empty last dimension: every group needs at least one sample")
    return t, out_dtype


def as_mask(mask: Any, shape: torch.Size, device: torch.device) -> torch.Tensor | None:
    """Check a sample mask (bool, same shape as the rewards, True = real sample)."""
    if mask is None:
        return None
    if isinstance(mask, torch.Tensor):
        m = mask.detach()
    else:
        try:
            m = torch.as_tensor(np.asarray(mask))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"mask could not be read as an array: {exc}") from None
    if m.dtype != torch.bool:
        raise ValueError(f"mask must be a boolean tensor (True = real sample), got dtype {m.dtype}")
    if tuple(m.shape) != tuple(shape):
        raise ValueError(f"mask has shape {tuple(m.shape)} but rewards have shape {tuple(shape)}")
    return m.to(device)


def check_k(k: Any) -> int:
    """``k`` must be an integer >= 1 (bool is refused)."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        if isinstance(k, torch.Tensor) and k.dim() == 0 and not k.is_floating_point() and k.dtype != torch.bool:
            k = int(k)
        else:
            raise TypeError(f"k must be an integer, got {k!r} of type {type(k).__name__}")
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got k = {k}")
    return k


def check_finite(flat: torch.Tensor, flat_mask: torch.Tensor | None, batch_shape: tuple[int, ...],
                 name: str = "rewards") -> None:
    """Raise ``ValueError`` naming the first group and value that is NaN or infinite.

    Entries hidden by the mask are not checked (padding may hold anything).
    """
    if flat_mask is None and bool(torch.isfinite(flat.sum())):
        return  # one reduction: a finite sum means no NaN or inf (an overflowing sum falls through)
    bad = ~torch.isfinite(flat)
    if flat_mask is not None:
        bad &= flat_mask
    if bool(bad.any()):
        g, j = (int(v) for v in bad.nonzero()[0])
        value = float(flat[g, j])
        raise ValueError(
            f"{name} contain a non-finite value ({value}) in {group_label(g, batch_shape)} at position {j}"
        )


def check_binary(flat: torch.Tensor, flat_mask: torch.Tensor | None, batch_shape: tuple[int, ...],
                 method: str) -> None:
    """Binary (pass@K) methods need every real reward to be exactly 0 or 1."""
    bad = (flat != 0) & (flat != 1)
    if flat_mask is not None:
        bad &= flat_mask
    if bool(bad.any()):
        g, j = (int(v) for v in bad.nonzero()[0])
        raise ValueError(
            f"{method} needs binary rewards (0 or 1), got {float(flat[g, j])} in "
            f"{group_label(g, batch_shape)} at position {j}"
        )


#: A parsed mixture ``{K: w_K}``: ``(K, w_K)`` pairs sorted by ``K``, weights as floats.
Mixture = tuple[tuple[int, float], ...]


def check_k_spec(k: Any) -> int | Mixture:
    """``k`` is an integer >= 1 (see :func:`check_k`) or a mixture mapping ``{K: w_K}``.

    A mixture needs at least one entry; every key must be an integer >= 1 (bool is
    refused) and every weight a finite real number. Returns the int, or the
    ``(K, w_K)`` pairs sorted by ``K``. Whether each ``K`` suits a group size is the
    method's business (checked per group).
    """
    if not isinstance(k, Mapping):
        return check_k(k)
    if len(k) == 0:
        raise ValueError("k is an empty mapping: a mixture {K: w_K} needs at least one entry")
    pairs = []
    for key, weight in k.items():
        if type(key) is int and type(weight) is float and key >= 1 and math.isfinite(weight):
            pairs.append((key, weight))  # the common case, without the slower ABC checks below
            continue
        if isinstance(key, bool) or not isinstance(key, numbers.Integral):
            raise ValueError(f"mixture key {key!r} (type {type(key).__name__}) is not an integer K: "
                             "the keys of k = {K: w_K} are the K of max@K objectives")
        if int(key) < 1:
            raise ValueError(f"mixture key K = {int(key)} is out of range: every K must be >= 1")
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
            raise ValueError(f"mixture weight {weight!r} for K = {int(key)} is not a real number")
        w = float(weight)
        if not math.isfinite(w):
            raise ValueError(f"mixture weight for K = {int(key)} is not finite ({w})")
        pairs.append((int(key), w))
    return tuple(sorted(pairs))
