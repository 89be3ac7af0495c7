"""Data-parallel training through ``torchrun`` (DDP): process group, sharding, reductions.

``torchrun --nproc_per_node N -m maxpo.lab train ...`` starts N processes; each
reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` from the environment and joins a
process group (NCCL on GPUs, gloo on CPUs). Multi-node works the same way with
torchrun's ``--nnodes`` and rendezvous options.

How the work is split: each process takes a contiguous slice of the step's
prompts, with all B samples of a prompt on the same process, because the
advantages of a group need every reward of that group. The losses are scaled so
that the gradients DDP averages equal the gradient of the single-process loss on
the whole global batch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as tdist

__all__ = ["DistInfo", "init_distributed", "shard_range", "all_reduce_sum", "barrier", "broadcast_object"]


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job (a single process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this process writes logs, metrics and checkpoints."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """Whether a process group is in use."""
        return self.world > 1


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment, if any.

    Returns ``DistInfo()`` when ``WORLD_SIZE`` is unset or 1. On CUDA each process
    uses GPU ``LOCAL_RANK``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not tdist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local)
        tdist.init_process_group(backend=backend)
    return DistInfo(rank=rank, world=world, local_rank=local)


def shard_range(n: int, dist: DistInfo) -> tuple[int, int]:
    """Contiguous slice ``[lo, hi)`` of ``n`` items for this process (sizes differ by at most 1)."""
    base, extra = divmod(n, dist.world)
    lo = dist.rank * base + min(dist.rank, extra)
    return lo, lo + base + (1 if dist.rank < extra else 0)


def all_reduce_sum(x: torch.Tensor, dist: DistInfo) -> torch.Tensor:
    """Sum ``x`` over processes (returned on ``x``'s device; a no-op for one process)."""
    if not dist.active:
        return x
    device = torch.device("cuda", dist.local_rank) if tdist.get_backend() == "nccl" else torch.device("cpu")
    y = x.to(device).clone()
    tdist.all_reduce(y)
    return y.to(x.device)


def barrier(dist: DistInfo) -> None:
    """Wait for every process (a no-op for one process)."""
    if dist.active:
        tdist.barrier()


_T = TypeVar("_T")


def broadcast_object(obj: _T, dist: DistInfo) -> _T:
    """Rank 0's ``obj`` on every process."""
    if not dist.active:
        return obj
    box = [obj]
    tdist.broadcast_object_list(box, src=0)
    return box[0]
