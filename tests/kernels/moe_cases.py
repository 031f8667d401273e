"""Shared inputs of the kernel tests: random MoE problems, tie-free routing, the tolerance table.

Shapes: T tokens, k slots, E experts, H hidden, I expert width.
Widths are tiny (interpreter: 10-70 ms per program instance) and deliberately not multiples of the
64-wide tiles, so every masked edge runs: H = 80, I = 96.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from emo_prune.runtime.layout import ExpertStack

HIDDEN = 80
WIDTH = 96

# dtype -> tolerance of an experts output against the fp32 reference. bf16: operands, the [P, I]
# intermediate and the output are rounded to bf16 (2^-8 relative each); on these shapes transformers'
# own eager loop deviates from the reference by up to 0.125 at outputs of 18 and ~0.06 near 1.
TOLERANCES = {
    torch.float32: dict(atol=1e-5, rtol=1e-4),
    torch.float16: dict(atol=2e-2, rtol=1e-2),
    torch.bfloat16: dict(atol=8e-2, rtol=3e-2),
}
# logits of whole models through 2 MoE layers, against eager in the same dtype.
MODEL_TOLERANCES = {
    torch.float32: dict(atol=1e-4, rtol=1e-4),
    torch.bfloat16: dict(atol=8e-2, rtol=5e-2),
}


@dataclass
class Problem:
    x: torch.Tensor  # [T, H]
    gate_up: torch.Tensor  # [E, 2I, H] (or [E, H, 2I] when transposed)
    down: torch.Tensor  # [E, H, I] (or [E, I, H])
    ids: torch.Tensor  # [T, k] int64
    weights: torch.Tensor  # [T, k]
    transposed: bool = False
    concatenated: bool = True

    def stack(self) -> ExpertStack:
        return ExpertStack(self.gate_up, self.down, self.transposed, self.concatenated)


def distinct_ids(tokens: int, experts: int, top_k: int, pool: list[int] | None = None, seed: int = 0) -> torch.Tensor:
    """[T, k] expert ids, distinct within a row, drawn from `pool` (default all E)."""
    gen = torch.Generator().manual_seed(seed)
    pool_t = torch.tensor(pool if pool is not None else list(range(experts)))
    rows = [pool_t[torch.randperm(len(pool_t), generator=gen)[:top_k]] for _ in range(tokens)]
    return torch.stack(rows) if rows else torch.empty(0, top_k, dtype=torch.int64)


def tie_free_logits(tokens: int, experts: int, seed: int = 0) -> torch.Tensor:
    """[T, E] fp32 logits whose values in a row are distinct and exact in bf16: a permutation of
    0..E-1 times 3/8, plus a per-row offset (softmax ignores it)."""
    gen = torch.Generator().manual_seed(seed)
    rows = torch.stack([torch.randperm(experts, generator=gen) for _ in range(tokens)]).float() * 0.375
    return rows + torch.randint(-4, 4, (tokens, 1), generator=gen).float()


def make_problem(
    tokens: int,
    experts: int,
    top_k: int,
    dtype: torch.dtype,
    *,
    pool: list[int] | None = None,
    transposed: bool = False,
    concatenated: bool = True,
    seed: int = 0,
) -> Problem:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(tokens, HIDDEN, generator=gen).to(dtype)
    gate_up = (torch.randn(experts, 2 * WIDTH, HIDDEN, generator=gen) * 0.15).to(dtype)
    down = (torch.randn(experts, HIDDEN, WIDTH, generator=gen) * 0.15).to(dtype)
    if transposed:
        gate_up, down = gate_up.transpose(1, 2).contiguous(), down.transpose(1, 2).contiguous()
    ids = distinct_ids(tokens, experts, top_k, pool, seed)
    weights = torch.rand(tokens, top_k, generator=gen).to(dtype)
    return Problem(x, gate_up, down, ids, weights, transposed, concatenated)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """emo_cpu splits products over the threads (1 thread: plain F.linear), so CPU tests run both;
    the suite's autouse fixture pins 1 thread otherwise."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
