"""NaN / Inf in what a build keeps: the routers' kept rows and the kept experts, read before anything is written.

A non-finite weight in the source is copied faithfully, and the build then fails `verify` for a reason
that is not the extraction's; saying so up front (a warning, or an error with `strict`) points at the
source. Only the bytes the build keeps are read, CHUNK at a time (`source.chunks`), floats only.
"""

from __future__ import annotations

import torch

from emo_prune.arch import MoEArchitecture
from emo_prune.extract.jobs import CONVERTIBLE, Job
from emo_prune.extract.source import ByteSource, chunks, opened
from emo_prune.dtypes import torch_dtype

CHECKED_ROLES = ("router", "router_vector", "expert", "fused")


def _finite(source: ByteSource) -> bool:
    dtype = torch_dtype(source.dtype)
    with opened(source) as fd:
        return all(bool(torch.isfinite(piece.view(dtype)).all()) for piece in chunks(fd, source))


def nonfinite_tensors(arch: MoEArchitecture, jobs: list[Job]) -> list[str]:
    """Source names of the router and expert tensors whose kept bytes hold a NaN or an Inf."""
    return [
        job.source.tensor
        for job in jobs
        if arch.classify(job.source.tensor).kind in CHECKED_ROLES
        and job.source.dtype in CONVERTIBLE
        and not _finite(job.source)
    ]
