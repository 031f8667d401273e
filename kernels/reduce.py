"""Per-token reduction of weighted expert outputs: out[t] = sum_j pair_out[t*k + j].

Shapes: T tokens, k slots, H hidden. pair_out [T*k, H] fp32, ids [T, k] -> out [T, H] in the
activation dtype. A fixed-order sum instead of atomics, so results are deterministic (and bf16
`tl.atomic_add` does not exist in the interpreter anyway). Pairs whose id lies outside [0, E) were
never written by the GEMMs and are skipped here.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

# [BLOCK_T, BLOCK_H] output tile per program; 16 x 128 fp32 is 16 values a thread at 4 warps.
BLOCK_T = 16
BLOCK_H = 128


@triton.jit
def _sum_topk_kernel(
    pair_out_ptr,
    ids_ptr,
    out_ptr,
    T,
    H,
    E,
    TOP_K,
    stride_pp,
    stride_ph,
    stride_ot,
    stride_oh,
    BLOCK_T: tl.constexpr,
    BLOCK_H: tl.constexpr,
):
    t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)  # [BT]
    h = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)  # [BH]
    t_ok = t < T
    h_ok = h < H
    acc = tl.zeros([BLOCK_T, BLOCK_H], dtype=tl.float32)
    for j in range(0, TOP_K):
        pair = t.to(tl.int64) * TOP_K + j
        expert = tl.load(ids_ptr + pair, mask=t_ok, other=-1)
        live = t_ok & (expert >= 0) & (expert < E)
        acc += tl.load(
            pair_out_ptr + pair[:, None] * stride_pp + h[None, :] * stride_ph,
            mask=live[:, None] & h_ok[None, :],
            other=0.0,
        )
    out_ptrs = out_ptr + t[:, None].to(tl.int64) * stride_ot + h[None, :] * stride_oh
    tl.store(out_ptrs, acc.to(out_ptr.dtype.element_ty), mask=t_ok[:, None] & h_ok[None, :])


def sum_topk(pair_out: torch.Tensor, ids: torch.Tensor, num_experts: int, dtype: torch.dtype) -> torch.Tensor:
    """pair_out [T*k, H] fp32, ids [T, k] -> [T, H] in dtype."""
    T, top_k = ids.shape
    H = pair_out.shape[1]
    out = torch.empty(T, H, dtype=dtype, device=pair_out.device)
    grid = (triton.cdiv(T, BLOCK_T), triton.cdiv(H, BLOCK_H))
    _sum_topk_kernel[grid](
        pair_out,
        ids.reshape(-1),
        out,
        T,
        H,
        num_experts,
        top_k,
        pair_out.stride(0),
        pair_out.stride(1),
        out.stride(0),
        out.stride(1),
        BLOCK_T=BLOCK_T,
        BLOCK_H=BLOCK_H,
    )
    return out
