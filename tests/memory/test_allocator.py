"""The layer streams' memory release reaches glibc where there is one (a lookup that silently failed
would undo it: the peak would grow with the number of layers again, emo_prune/memory/allocator.py)."""

from __future__ import annotations

import platform
import sys

import pytest

from emo_prune.memory.allocator import malloc_trim, release_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_glibc_malloc_trim_is_found_and_runs():
    assert malloc_trim() is not None
    chunks = [bytearray(1024) for _ in range(50_000)]  # ~50 MB of heap chunks, freed before the trim
    del chunks
    assert release_freed_memory() in (True, False)


def test_elsewhere_it_does_nothing(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert malloc_trim() is None and release_freed_memory() is False
