"""Multi-process profiling (`accelerate launch` / torchrun): shard documents, sum statistics.

Each process profiles every world_size-th document of each domain; the sums are reduced with one
torch.distributed all_reduce (gloo on CPU, nccl on CUDA) so every rank ends with the totals and rank 0
writes the file. Without WORLD_SIZE > 1 and no initialized process group, this is a single process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def current_world(device: str = "cpu") -> World:
    """The process group this process belongs to, initializing it from the launcher's environment."""
    if not dist.is_available():
        return World()
    if not dist.is_initialized():
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return World()
        use_nccl = device != "cpu" and torch.cuda.is_available()
        dist.init_process_group(backend="nccl" if use_nccl else "gloo")
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))


def all_reduce_sum(vector: torch.Tensor, world: World) -> torch.Tensor:
    if world.size > 1:
        dist.all_reduce(vector, op=dist.ReduceOp.SUM)
    return vector
