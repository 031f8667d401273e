"""Decode path: vector x matrix per (token, slot) pair, no sort, for when T*k is small against E.

Shapes: T tokens, k slots, P = T*k pairs, E experts, H hidden, I expert width.
  x [T, H], ids [T, k] -> h [P, I] = silu(gate_e x_t) * (up_e x_t)         grid (P, cdiv(I, BLOCK_N))
  h [P, I]             -> pair_out [P, H] fp32 = w_p * (down_e h_p)          grid (P, cdiv(H, BLOCK_N))
With few tokens almost every pair hits a different expert, so sorting buys nothing and each program
streams one [BLOCK_N, K] weight panel exactly once (memory-bound; no tensor cores needed for one row).
Pairs whose id lies outside [0, E) (expert-parallel sentinels) are skipped; reduce.py masks them.
Weight layouts are described by grouped_gemm.WeightStrides.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _decode_gate_up_kernel(
    x_ptr,
    w_ptr,
    h_ptr,
    ids_ptr,
    E,
    TOP_K,
    N,
    K,
    stride_xt,
    stride_xk,
    stride_we,
    stride_wn,
    stride_wk,
    up_offset,
    stride_hp,
    stride_hn,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    pair = tl.program_id(0)
    expert = tl.load(ids_ptr + pair).to(tl.int64)
    if (expert < 0) | (expert >= E):
        return
    token = pair // TOP_K
    n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)  # [BN]
    n_ok = n < N
    kk = tl.arange(0, BLOCK_K)  # [BK]
    g_ptrs = w_ptr + expert * stride_we + n[:, None] * stride_wn + kk[None, :] * stride_wk  # [BN, BK]
    acc_g = tl.zeros([BLOCK_N], dtype=tl.float32)
    acc_u = tl.zeros([BLOCK_N], dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k_ok = kk + k0 < K
        xv = tl.load(x_ptr + token * stride_xt + (kk + k0) * stride_xk, mask=k_ok, other=0.0).to(tl.float32)
        g = tl.load(g_ptrs, mask=n_ok[:, None] & k_ok[None, :], other=0.0).to(tl.float32)
        u = tl.load(g_ptrs + up_offset, mask=n_ok[:, None] & k_ok[None, :], other=0.0).to(tl.float32)
        acc_g += tl.sum(g * xv[None, :], axis=1)
        acc_u += tl.sum(u * xv[None, :], axis=1)
        g_ptrs += BLOCK_K * stride_wk
    h = acc_g * tl.sigmoid(acc_g) * acc_u
    tl.store(h_ptr + pair * stride_hp + n * stride_hn, h.to(h_ptr.dtype.element_ty), mask=n_ok)


@triton.jit
def _decode_down_kernel(
    h_ptr,
    w_ptr,
    out_ptr,
    ids_ptr,
    route_w_ptr,
    E,
    N,
    K,
    stride_hp,
    stride_hk,
    stride_we,
    stride_wn,
    stride_wk,
    stride_op,
    stride_on,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    pair = tl.program_id(0)
    expert = tl.load(ids_ptr + pair).to(tl.int64)
    if (expert < 0) | (expert >= E):
        return
    n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = n < N
    kk = tl.arange(0, BLOCK_K)
    b_ptrs = w_ptr + expert * stride_we + n[:, None] * stride_wn + kk[None, :] * stride_wk  # [BN, BK]
    acc = tl.zeros([BLOCK_N], dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k_ok = kk + k0 < K
        hv = tl.load(h_ptr + pair * stride_hp + (kk + k0) * stride_hk, mask=k_ok, other=0.0).to(tl.float32)
        b = tl.load(b_ptrs, mask=n_ok[:, None] & k_ok[None, :], other=0.0).to(tl.float32)
        acc += tl.sum(b * hv[None, :], axis=1)
        b_ptrs += BLOCK_K * stride_wk
    acc = acc * tl.load(route_w_ptr + pair).to(tl.float32)
    tl.store(out_ptr + pair * stride_op + n * stride_on, acc, mask=n_ok)


def decode_gate_up(x, w, ws, ids, num_experts: int, width: int, cfg: dict) -> torch.Tensor:
    """x [T, H], ids [T, k] -> h [P, I]."""
    T, top_k = ids.shape
    flat = ids.reshape(-1)
    h = torch.empty(T * top_k, width, dtype=x.dtype, device=x.device)
    grid = (T * top_k, triton.cdiv(width, cfg["BLOCK_N"]))
    _decode_gate_up_kernel[grid](
        x,
        w,
        h,
        flat,
        num_experts,
        top_k,
        width,
        x.shape[1],
        x.stride(0),
        x.stride(1),
        ws.stride_e,
        ws.stride_n,
        ws.stride_k,
        ws.up_offset,
        h.stride(0),
        h.stride(1),
        **cfg,
    )
    return h


def decode_down(h, w, ws, ids, route_weights, num_experts: int, hidden: int, cfg: dict) -> torch.Tensor:
    """h [P, I] -> pair_out [P, H] fp32 weighted by route_weights [P]."""
    flat = ids.reshape(-1)
    out = torch.empty(h.shape[0], hidden, dtype=torch.float32, device=h.device)
    grid = (h.shape[0], triton.cdiv(hidden, cfg["BLOCK_N"]))
    _decode_down_kernel[grid](
        h,
        w,
        out,
        flat,
        route_weights,
        num_experts,
        hidden,
        h.shape[1],
        h.stride(0),
        h.stride(1),
        ws.stride_e,
        ws.stride_n,
        ws.stride_k,
        out.stride(0),
        out.stride(1),
        **cfg,
    )
    return out
