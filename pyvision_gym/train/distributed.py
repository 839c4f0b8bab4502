"""The whole training loop under ``torchrun``: process group, sharded rollouts, one writer.

    torchrun --nproc_per_node 2 -m pyvision_gym.cli train --config tiny-cpu

Every rank runs the same loop. Rollouts are shared out: rank r rolls out prompts r, r + W, ...
of each generation batch (its own environments, its own copy of the policy for generation),
and the trajectories are gathered so that every rank holds the same batch, in prompt order.
Filtering, ranking and advantages are then computed identically everywhere (same seeds, same
data), and the learner's update splits the batch over the ranks again (DDP or FSDP2, see
``learner.py``). Rank 0 alone writes metrics, validation rows, the plot and the summary;
checkpoints are written by every rank (each its RNG state). On CPU the process group uses
gloo, on GPU nccl with one device per local rank.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.distributed as dist

from pyvision_gym.rollout.records import TaskSpec

from .config import TrainConfig
from .trajectory import Trajectory

__all__ = ["gather_rollouts", "init_distributed", "rank_seed", "rank_zero_first", "shutdown_distributed"]


def init_distributed(cfg: TrainConfig) -> tuple[int, int, bool]:
    """Join the process group ``torchrun`` describes (``WORLD_SIZE`` > 1); on GPU pin this rank
    to ``cuda:LOCAL_RANK``. Returns ``(rank, world_size, started_here)``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, False
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    cuda = cfg.policy.device.startswith("cuda") or (cfg.policy.device == "auto" and torch.cuda.is_available())
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        cfg.policy.device = f"cuda:{local}"
    dist.init_process_group("nccl" if cuda else "gloo")
    return dist.get_rank(), dist.get_world_size(), True


def shutdown_distributed(started: bool) -> None:
    """Leave the process group if :func:`init_distributed` joined it."""
    if started and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


@contextlib.contextmanager
def rank_zero_first(rank: int, world: int) -> Iterator[None]:
    """Rank 0 runs the block first, the other ranks after it (e.g. building and loading a
    model folder: concurrent loads of a folder another rank is still writing fail)."""
    if world > 1 and rank != 0:
        dist.barrier()
    yield
    if world > 1 and rank == 0:
        dist.barrier()


def rank_seed(seed: int | None, rank: int, world: int) -> int | None:
    """This rank's sampling seed for a collect call seeded ``seed`` (the seed itself on one rank)."""
    if seed is None or world == 1:
        return seed
    return int(np.random.SeedSequence([int(seed), rank]).generate_state(1)[0])


def gather_rollouts(
    collect: Callable[[Sequence[TaskSpec], int, int | None, int], list[Trajectory]],
    specs: Sequence[TaskSpec], n: int, seed: int | None, first_group: int, rank: int, world: int,
) -> list[Trajectory]:
    """``collect(specs, n, seed, first_group)`` shared out over the ranks, gathered everywhere.

    Prompt i (group ``first_group + i``) is rolled out by rank ``i % world``; the result is
    every rank's trajectories in prompt order, identical on all ranks."""
    if world == 1:
        return collect(specs, n, seed, first_group)
    mine = list(range(rank, len(specs), world))
    local = collect([specs[i] for i in mine], n, rank_seed(seed, rank, world), 0) if mine else []
    for t in local:  # the local group ids count this rank's prompts: make them global
        t.group_id = first_group + mine[t.group_id]
    everyone: list[list[Trajectory] | None] = [None] * world
    dist.all_gather_object(everyone, local)
    merged = [t for part in everyone for t in (part or [])]
    return sorted(merged, key=lambda t: t.group_id)  # stable: a group keeps its rollout order
