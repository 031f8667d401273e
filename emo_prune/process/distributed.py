"""Several processes (`accelerate launch` / torchrun): the process group, from the launcher's environment.

Without WORLD_SIZE > 1 and no initialized process group, this is a single process. Users:
  profile  each process profiles every world_size-th document of each domain; the sums are reduced
           with one all_reduce (gloo on CPU, nccl on CUDA) so every rank ends with the totals and rank 0
           writes the file (emo_prune/profile/runner.py)
  eval     lm-eval shards each task's documents by rank and gathers them on rank 0; every rank gets
           rank 0's results (`broadcast`), rank 0 writes them (emo_prune/eval/lm.py, harness.py)
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


def broadcast(obj: object, world: World, src: int = 0) -> object:
    """`obj` of rank `src`, on every rank."""
    if world.size <= 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_lists(items: list, world: World) -> list:
    """Every rank's `items`, concatenated in rank order, on every rank."""
    if world.size <= 1:
        return items
    parts: list = [None] * world.size
    dist.all_gather_object(parts, items)
    return [item for part in parts for item in part]
