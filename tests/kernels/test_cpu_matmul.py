"""The CPU experts path's native low-precision GEMMs run on a few padded row counts, with the same results."""

from __future__ import annotations

import threading

import pytest
import torch
import torch.nn.functional as F

from emo_prune.runtime import cpu_matmul
from emo_prune.runtime.cpu_matmul import matmul, native_rows


def test_row_counts_are_covered_and_few():
    rows = [native_rows(m) for m in range(1, 4097)]
    assert all(r >= m for m, r in zip(range(1, 4097), rows))
    assert all(r <= 2 * m for m, r in zip(range(1, 257), rows))  # powers of two: at most double
    assert all(r < m * 3 / 2 for m, r in zip(range(257, 4097), rows))  # multiples of 128: under half again
    assert len(set(rows)) <= 40  # one cached oneDNN kernel per shape: a few dozen, not thousands


@pytest.mark.parametrize("m", [2, 3, 17, 130, 300])
def test_padded_product_equals_the_plain_one(m):
    gen = torch.Generator().manual_seed(m)
    x = torch.randn(m, 96, generator=gen).bfloat16()
    w = torch.randn(80, 96, generator=gen).bfloat16()
    got = matmul(x, w, native=True)
    assert got.shape == (m, 80) and got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), F.linear(x, w).float(), atol=2e-2, rtol=1e-2)


@pytest.mark.parametrize("first,then", [(torch.inference_mode, torch.no_grad), (torch.no_grad, torch.inference_mode)])
def test_the_scratch_tile_serves_both_modes_whichever_came_first(first, then, monkeypatch):
    """The reused fp32 tile, first allocated under inference_mode (a profile), is still writable in a
    later forward under no_grad (eval), and the other way round."""
    monkeypatch.setattr(cpu_matmul, "_local", threading.local())  # empty: the first call allocates the tile
    w, x = torch.randn(96, 40).bfloat16(), torch.randn(3, 40)
    with first():
        a = cpu_matmul.matmul_fp32_tiles(x, w)
    with then():
        b = cpu_matmul.matmul_fp32_tiles(x, w)
    assert torch.equal(a, b)
