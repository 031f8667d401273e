"""NaN / Inf in what a build keeps: the routers' kept rows and the kept experts, read before anything is written.

A non-finite weight in the source is copied faithfully, and the build then fails `verify` for a reason
that is not the extraction's; saying so up front (a warning, or an error with `strict`) points at the
source. Only the bytes the build keeps are read, CHUNK at a time (`source.chunks`), floats only.

The test is on the bits, without torch: an IEEE float is NaN or Inf exactly when its exponent bits
are all ones, which numpy checks on the raw words for every dtype, bf16 included.
"""

from __future__ import annotations

import numpy as np

from emo_prune.extract.jobs import CONVERTIBLE, Job
from emo_prune.extract.source import chunks
from emo_prune.io.ranges import TensorBytes, opened

# dtype tag -> (unsigned word, exponent mask); covers CONVERTIBLE
EXPONENT_BITS = {
    "F64": (np.uint64, np.uint64(0x7FF0_0000_0000_0000)),
    "F32": (np.uint32, np.uint32(0x7F80_0000)),
    "F16": (np.uint16, np.uint16(0x7C00)),
    "BF16": (np.uint16, np.uint16(0x7F80)),
}


def _finite(source: TensorBytes) -> bool:
    word, mask = EXPONENT_BITS[source.dtype]
    with opened(source.path) as fd:
        return not any(bool(((piece.view(word) & mask) == mask).any()) for piece in chunks(fd, source))


def nonfinite_tensors(jobs: list[Job]) -> list[str]:
    """Source names of the router and expert tensors (`Job.moe`) whose kept bytes hold a NaN or an Inf."""
    return [job.source.tensor for job in jobs if job.moe and job.source.dtype in CONVERTIBLE and not _finite(job.source)]
