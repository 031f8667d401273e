"""The coverage guard's side file of a build: the full router's rows of the experts it dropped.

`emo_prune.dropped_router.safetensors` holds `layers.{i}.weight` [D, H] (source dtype, dropped ids in
ascending order) for every MoE layer that lost experts: a few KB. At inference the pool runtime
(emo_prune.extract.coverage_meter) rebuilds the full router's logits from the build's K rows and these D rows
and reports the share of probability a request puts on kept experts. Written from byte ranges of the
source like every other build tensor (emo_prune.extract.jobs), so extraction never needs torch.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from emo_prune.extract.jobs import Job
from emo_prune.extract.source import copy_into
from emo_prune.io import Checkpoint, LayerTensors
from emo_prune.io.ranges import tensor_bytes
from emo_prune.io.shards import TensorSpec, pwrite_all
from emo_prune.select.plan import Kept

SIDE_FILE = "emo_prune.dropped_router.safetensors"


def dropped_router_jobs(checkpoint: Checkpoint, inventory: list[LayerTensors], kept: Kept) -> list[Job]:
    """One job per MoE layer that lost experts: its router's (the inventory's) rows of the dropped ids."""
    jobs = []
    for entry, ids in zip(inventory, kept, strict=True):
        if ids is None or entry.router is None:  # a dense layer: no router
            continue
        dropped = sorted(set(range(entry.layout.num_experts)) - set(ids))
        if not dropped:
            continue
        info = checkpoint.tensor(entry.router)  # [E, H]
        spec = TensorSpec(f"layers.{entry.index}.weight", info.dtype, (len(dropped), *info.shape[1:]))
        jobs.append(Job(spec, tensor_bytes(checkpoint, entry.router, dropped)))
    return jobs


def write_dropped_router(folder: Path, checkpoint: Checkpoint, inventory: list[LayerTensors], kept: Kept) -> str | None:
    """Write SIDE_FILE into `folder` (a build being written, inside its atomic folder); None when
    nothing was dropped."""
    jobs = dropped_router_jobs(checkpoint, inventory, kept)
    if not jobs:
        return None
    header: dict[str, object] = {"__metadata__": {"format": "1", "what": "full-router rows of dropped experts"}}
    offset = 0
    for job in jobs:
        header[job.spec.name] = {
            "dtype": job.spec.dtype,
            "shape": list(job.spec.shape),
            "data_offsets": [offset, offset + job.spec.nbytes],
        }
        offset += job.spec.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # safetensors pads the header to 8 bytes
    fd = os.open(folder / SIDE_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        pwrite_all(fd, memoryview(struct.pack("<Q", len(text)) + text), 0)
        position = 8 + len(text)
        for job in jobs:
            position += copy_into(job.source, fd, position, job.spec.dtype)
    finally:
        os.close(fd)
    return SIDE_FILE
