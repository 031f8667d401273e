"""Token-expert alignment: group the (token, slot) pairs by expert and pad each group to BLOCK_M rows.

Shapes: T tokens, k slots, P = T*k pairs (pair p = token p // k, slot p % k), E experts.
  ids [T, k] int -> sorted_pairs [max_blocks * BLOCK_M] int32   pair ids grouped by expert, each
                                                                  group padded with the sentinel P
                    block_expert [max_blocks] int32              expert of each BLOCK_M rows, -1 past the end
Only indices move: the grouped GEMMs gather activation rows through sorted_pairs (vLLM's
moe_align_block_size, ScatterMoE's sort). Ids outside [0, E) (expert-parallel sentinels) are dropped.

One program does everything: count (one-hot column sums), an exclusive cumsum of the per-expert block
counts, then the scatter where a pair's slot is its expert's start + pairs of that expert seen
before it. The output size is a host-side upper bound (`max_blocks`) so nothing syncs with the host;
the GEMM programs past the last used block read block_expert = -1 and exit.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

# Pairs per loop step: a [BLOCK_P, BLOCK_E] one-hot is the working set (64 x 128 int32 = 32 KB
# for E = 128). Not tuned on a GPU.
BLOCK_P = 64
BLOCK_B = 128  # block ids labelled per loop step
ALIGN_WARPS = 8  # the single program holds several [BLOCK_P, BLOCK_E] int32 tiles: spread them wider


@triton.jit
def _align_kernel(
    ids_ptr, sorted_ptr, block_expert_ptr,
    P, E, max_blocks,
    BLOCK_M: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_B: tl.constexpr,
):
    experts = tl.arange(0, BLOCK_E)  # [BE]
    lanes = tl.arange(0, BLOCK_P)  # [BP]

    counts = tl.zeros([BLOCK_E], dtype=tl.int32)
    for start in range(0, P, BLOCK_P):
        offs = start + lanes
        e = tl.load(ids_ptr + offs, mask=offs < P, other=-1)
        counts += tl.sum((e[:, None] == experts[None, :]).to(tl.int32), axis=0)

    blocks = (counts + BLOCK_M - 1) // BLOCK_M  # [BE], 0 for experts without pairs
    block_end = tl.cumsum(blocks, axis=0)
    block_start = block_end - blocks
    total_blocks = tl.sum(blocks, axis=0)

    # expert of block b = number of experts whose blocks all end at or before b
    real = experts < E
    for b0 in range(0, max_blocks, BLOCK_B):
        b = b0 + tl.arange(0, BLOCK_B)
        owner = tl.sum(((block_end[None, :] <= b[:, None]) & real[None, :]).to(tl.int32), axis=1)
        owner = tl.where(b < total_blocks, owner, -1)
        tl.store(block_expert_ptr + b, owner, mask=b < max_blocks)

    seen = tl.zeros([BLOCK_E], dtype=tl.int32)  # pairs of each expert already placed
    for start in range(0, P, BLOCK_P):
        offs = start + lanes
        e = tl.load(ids_ptr + offs, mask=offs < P, other=-1)
        onehot = (e[:, None] == experts[None, :]).to(tl.int32)  # [BP, BE]
        before = tl.cumsum(onehot, axis=0) - onehot  # same-expert pairs earlier in this step
        slot = block_start[None, :] * BLOCK_M + seen[None, :] + before  # [BP, BE]
        dest = tl.sum(onehot * slot, axis=1)  # [BP]
        keep = (offs < P) & (e >= 0) & (e < E)
        tl.store(sorted_ptr + dest, offs.to(tl.int32), mask=keep)
        seen += tl.sum(onehot, axis=0)


def max_blocks_for(num_pairs: int, num_experts: int, block_m: int) -> int:
    """Upper bound on padded blocks: every non-empty expert wastes less than one block."""
    return triton.cdiv(num_pairs, block_m) + min(num_experts, num_pairs)


def align_pairs(ids: torch.Tensor, num_experts: int, block_m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """ids [T, k] -> (sorted_pairs [max_blocks * block_m] int32, block_expert [max_blocks] int32)."""
    flat = ids.reshape(-1)  # [P]
    P = flat.numel()
    max_blocks = max_blocks_for(P, num_experts, block_m)
    sorted_pairs = torch.full((max_blocks * block_m,), P, dtype=torch.int32, device=ids.device)
    block_expert = torch.empty(max_blocks, dtype=torch.int32, device=ids.device)
    _align_kernel[(1,)](
        flat, sorted_pairs, block_expert,
        P, num_experts, max_blocks,
        BLOCK_M=block_m, BLOCK_P=BLOCK_P,
        BLOCK_E=max(16, triton.next_power_of_2(num_experts)), BLOCK_B=BLOCK_B,
        num_warps=ALIGN_WARPS,
    )
    return sorted_pairs, block_expert
