"""Token-expert alignment: group the (token, slot) pairs by expert and pad each group to BLOCK_M rows.

Shapes: T tokens, k slots, P = T*k pairs (pair p = token p // k, slot p % k), E experts,
C = cdiv(P, BLOCK_P) chunks of pairs.
  ids [T, k] int -> sorted_pairs [max_blocks * BLOCK_M] int32   pair ids grouped by expert, each
                                                                  group padded with the sentinel P
                    block_expert [max_blocks] int32              expert of each BLOCK_M rows, -1 past the end
Only indices move: the grouped GEMMs gather activation rows through sorted_pairs (vLLM's
moe_align_block_size, ScatterMoE's sort). Ids outside [0, E) (expert-parallel sentinels) are dropped.

Three steps, all on the device (nothing syncs with the host; sizes are host-side upper bounds):
  1. _count_kernel, one program per chunk: counts [C, E] = one-hot column sums of its BLOCK_P pairs.
  2. torch: exclusive cumsum over chunks (where each chunk's pairs of expert e start), per-expert
     padded block counts and starts, block -> expert by searchsorted.
  3. _scatter_kernel, one program per chunk: slot of a pair = its expert's first row + pairs of that
     expert in earlier chunks + earlier pairs of that expert in this chunk (cumsum of the one-hot).
A single program for everything would loop over all P pairs on one SM: ~500 steps at 4096 tokens.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

# Pairs per program: the [BLOCK_P, BLOCK_E] one-hot and its cumsum are the working set
# (64 x 128 int32 = 32 KB for E = 128). Not tuned on a GPU (none was available).
BLOCK_P = 64


@triton.jit
def _count_kernel(ids_ptr, counts_ptr, P, E, BLOCK_P: tl.constexpr, BLOCK_E: tl.constexpr):
    chunk = tl.program_id(0)
    offs = chunk * BLOCK_P + tl.arange(0, BLOCK_P)  # [BP]
    experts = tl.arange(0, BLOCK_E)  # [BE]
    e = tl.load(ids_ptr + offs, mask=offs < P, other=-1)
    counts = tl.sum((e[:, None] == experts[None, :]).to(tl.int32), axis=0)  # [BE]
    tl.store(counts_ptr + chunk * E + experts, counts, mask=experts < E)


@triton.jit
def _scatter_kernel(
    ids_ptr,
    chunk_start_ptr,
    expert_row_ptr,
    sorted_ptr,
    P,
    E,
    BLOCK_P: tl.constexpr,
    BLOCK_E: tl.constexpr,
):
    chunk = tl.program_id(0)
    offs = chunk * BLOCK_P + tl.arange(0, BLOCK_P)  # [BP]
    experts = tl.arange(0, BLOCK_E)  # [BE]
    real = experts < E
    e = tl.load(ids_ptr + offs, mask=offs < P, other=-1)
    onehot = (e[:, None] == experts[None, :]).to(tl.int32)  # [BP, BE]
    before = tl.cumsum(onehot, axis=0) - onehot  # same-expert pairs earlier in this chunk
    first = tl.load(expert_row_ptr + experts, mask=real, other=0)  # [BE] first padded row of e
    earlier = tl.load(chunk_start_ptr + chunk * E + experts, mask=real, other=0)  # [BE] in earlier chunks
    dest = tl.sum(onehot * (first[None, :] + earlier[None, :] + before), axis=1)  # [BP]
    keep = (offs < P) & (e >= 0) & (e < E)
    tl.store(sorted_ptr + dest, offs.to(tl.int32), mask=keep)


def max_blocks_for(num_pairs: int, num_experts: int, block_m: int) -> int:
    """Upper bound on padded blocks: every non-empty expert wastes less than one block."""
    return triton.cdiv(num_pairs, block_m) + min(num_experts, num_pairs)


def align_pairs(ids: torch.Tensor, num_experts: int, block_m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """ids [T, k] -> (sorted_pairs [max_blocks * block_m] int32, block_expert [max_blocks] int32)."""
    flat = ids.reshape(-1)  # [P]
    P, E = flat.numel(), num_experts
    max_blocks = max_blocks_for(P, E, block_m)
    sorted_pairs = torch.full((max_blocks * block_m,), P, dtype=torch.int32, device=ids.device)
    if P == 0:
        return sorted_pairs, torch.full((max_blocks,), -1, dtype=torch.int32, device=ids.device)
    chunks = triton.cdiv(P, BLOCK_P)
    block_e = max(16, triton.next_power_of_2(E))
    counts = torch.empty(chunks, E, dtype=torch.int32, device=ids.device)  # [C, E]
    _count_kernel[(chunks,)](flat, counts, P, E, BLOCK_P=BLOCK_P, BLOCK_E=block_e)

    chunk_start = (counts.cumsum(0, dtype=torch.int32) - counts).contiguous()  # [C, E] exclusive
    blocks = (counts.sum(0, dtype=torch.int32) + block_m - 1) // block_m  # [E], 0 for empty experts
    block_end = blocks.cumsum(0, dtype=torch.int32)  # [E]
    expert_row = ((block_end - blocks) * block_m).contiguous()  # [E] first padded row of each expert
    block_ids = torch.arange(max_blocks, dtype=torch.int32, device=ids.device)
    owner = torch.searchsorted(block_end, block_ids, right=True).to(torch.int32)  # experts ending <= b
    block_expert = torch.where(block_ids < block_end[-1], owner, -1).to(torch.int32)  # [max_blocks]

    _scatter_kernel[(chunks,)](flat, chunk_start, expert_row, sorted_pairs, P, E, BLOCK_P=BLOCK_P, BLOCK_E=block_e)
    return sorted_pairs, block_expert
