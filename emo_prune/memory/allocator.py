"""glibc's malloc under layer-by-layer runs: give a freed layer's memory back to the system.

glibc raises its mmap threshold each time a large block is freed (up to 32 MB), so once the first
layer has left memory, later layers' buffers of that size come from the heap, which fragments and
keeps what it has: the peak grew with the number of layers. `release_freed_memory` (glibc's
malloc_trim) after each layer or module leaves returns the heap's free pages.

Measured (EMO-shaped checkpoints of 6 and 24 layers, 1.26 and 5.04 GB, the models of
examples/benchmarks/memory_benchmark.py; peak RSS, one thread):
  verify --layerwise    1.02 -> 1.32 GB as the checkpoint grew 4x; with the trim 0.95 -> 0.95 GB
  greedy --layerwise    1.15 -> 1.21 GB;                           with the trim 1.06 -> 1.07 GB
at the same speed (within the noise of a shared machine). A fixed 1 MB mmap threshold (mallopt) was as
flat but cost 14-16% more time (every activation of 1 MB or more mapped and faulted in anew).
Elsewhere than glibc (macOS, musl) this does nothing.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable


def malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> bool:
    """Return the heap's free pages to the system; True when some were released (False without glibc)."""
    trim = malloc_trim()
    return trim is not None and bool(trim(0))
