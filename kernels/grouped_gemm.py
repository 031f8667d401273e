"""Grouped GEMMs over expert-sorted pairs: gate+up with SiLU*up in the epilogue, then down * weight.

Shapes: T tokens, k slots, P = T*k pairs, E experts, H hidden, I expert width,
R = max_blocks * BLOCK_M padded rows (align.py).
  x [T, H], gate_up weights [E, 2I, H] (or any layout expressed by the strides, see `WeightStrides`)
  h [R, I]      = silu(x[tok] @ gate^T) * (x[tok] @ up^T), rows in sorted (padded) order
  pair_out [P, H] fp32 = weight[pair] * (h @ down^T), rows in pair order, reduced over k by reduce.py
Grid: (max_blocks, cdiv(N, BLOCK_N)); each program owns one BLOCK_M group of one expert, so it streams
that expert's weight tile once for up to BLOCK_M tokens. Activation rows are gathered through
sorted_pairs; nothing is copied beforehand.

UPCAST (the interpreter on a CPU): bf16 `tl.dot` is wrong there, so operands become fp32 on load.
On a GPU operands stay in the storage dtype and accumulate in fp32; fp32 weights use IEEE products
(DOT_PRECISION) so results match eager within the fp32 tolerance, not TF32's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl


@dataclass(frozen=True)
class WeightStrides:
    """Element strides of one stacked expert weight, in GEMM terms: out feature n, in feature k.

    For gate_up, `up_offset` is where the up half starts and `stride_n` steps one gate row:
    concatenated [gate; up] -> (stride_n = s_n, up_offset = I * s_n); interleaved
    [g0, u0, g1, u1, ...] -> (stride_n = 2 * s_n, up_offset = s_n).
    """

    stride_e: int
    stride_n: int
    stride_k: int
    up_offset: int = 0

    @staticmethod
    def of(w: torch.Tensor, transposed: bool, gated_concatenated: bool | None = None) -> WeightStrides:
        """w [E, N, K] (or [E, K, N] when transposed). gated_concatenated None: not a gate_up weight."""
        s_e = w.stride(0)
        s_n, s_k = (w.stride(2), w.stride(1)) if transposed else (w.stride(1), w.stride(2))
        if gated_concatenated is None:
            return WeightStrides(s_e, s_n, s_k)
        width = (w.shape[2] if transposed else w.shape[1]) // 2  # I
        if gated_concatenated:
            return WeightStrides(s_e, s_n, s_k, up_offset=width * s_n)
        return WeightStrides(s_e, 2 * s_n, s_k, up_offset=s_n)


@triton.jit
def _gate_up_kernel(
    x_ptr,
    w_ptr,
    h_ptr,
    sorted_ptr,
    block_expert_ptr,
    P,
    TOP_K,
    N,
    K,
    stride_xt,
    stride_xk,
    stride_we,
    stride_wn,
    stride_wk,
    up_offset,
    stride_hm,
    stride_hn,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    UPCAST: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    pid_m = tl.program_id(0)
    expert = tl.load(block_expert_ptr + pid_m).to(tl.int64)
    if expert < 0:  # past the last used block
        return
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)  # [BM] padded row ids
    pair = tl.load(sorted_ptr + rows)
    valid = pair < P
    token = (pair // TOP_K).to(tl.int64)
    n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)  # [BN]
    n_ok = n < N
    kk = tl.arange(0, BLOCK_K)  # [BK]

    a_ptrs = x_ptr + token[:, None] * stride_xt + kk[None, :] * stride_xk  # [BM, BK]
    g_ptrs = w_ptr + expert * stride_we + n[None, :] * stride_wn + kk[:, None] * stride_wk  # [BK, BN]
    acc_g = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    acc_u = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k_ok = kk + k0 < K
        a = tl.load(a_ptrs, mask=valid[:, None] & k_ok[None, :], other=0.0)
        g = tl.load(g_ptrs, mask=k_ok[:, None] & n_ok[None, :], other=0.0)
        u = tl.load(g_ptrs + up_offset, mask=k_ok[:, None] & n_ok[None, :], other=0.0)
        if UPCAST:
            a = a.to(tl.float32)
            g = g.to(tl.float32)
            u = u.to(tl.float32)
        acc_g = tl.dot(a, g, acc_g, input_precision=DOT_PRECISION)
        acc_u = tl.dot(a, u, acc_u, input_precision=DOT_PRECISION)
        a_ptrs += BLOCK_K * stride_xk
        g_ptrs += BLOCK_K * stride_wk

    h = acc_g * tl.sigmoid(acc_g) * acc_u  # silu(gate) * up, fp32
    h_ptrs = h_ptr + rows[:, None].to(tl.int64) * stride_hm + n[None, :] * stride_hn
    tl.store(h_ptrs, h.to(h_ptr.dtype.element_ty), mask=valid[:, None] & n_ok[None, :])


@triton.jit
def _down_kernel(
    h_ptr,
    w_ptr,
    out_ptr,
    sorted_ptr,
    block_expert_ptr,
    route_w_ptr,
    P,
    N,
    K,
    stride_hm,
    stride_hk,
    stride_we,
    stride_wn,
    stride_wk,
    stride_op,
    stride_on,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    UPCAST: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    pid_m = tl.program_id(0)
    expert = tl.load(block_expert_ptr + pid_m).to(tl.int64)
    if expert < 0:
        return
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    pair = tl.load(sorted_ptr + rows)
    valid = pair < P
    n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = n < N
    kk = tl.arange(0, BLOCK_K)

    a_ptrs = h_ptr + rows[:, None].to(tl.int64) * stride_hm + kk[None, :] * stride_hk  # [BM, BK]
    b_ptrs = w_ptr + expert * stride_we + n[None, :] * stride_wn + kk[:, None] * stride_wk  # [BK, BN]
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k_ok = kk + k0 < K
        a = tl.load(a_ptrs, mask=valid[:, None] & k_ok[None, :], other=0.0)
        b = tl.load(b_ptrs, mask=k_ok[:, None] & n_ok[None, :], other=0.0)
        if UPCAST:
            a = a.to(tl.float32)
            b = b.to(tl.float32)
        acc = tl.dot(a, b, acc, input_precision=DOT_PRECISION)
        a_ptrs += BLOCK_K * stride_hk
        b_ptrs += BLOCK_K * stride_wk

    route_w = tl.load(route_w_ptr + pair, mask=valid, other=0.0).to(tl.float32)  # [BM]
    acc = acc * route_w[:, None]
    out_ptrs = out_ptr + pair[:, None].to(tl.int64) * stride_op + n[None, :] * stride_on
    tl.store(out_ptrs, acc, mask=valid[:, None] & n_ok[None, :])


def gate_up(
    x: torch.Tensor,
    w: torch.Tensor,
    ws: WeightStrides,
    sorted_pairs: torch.Tensor,
    block_expert: torch.Tensor,
    top_k: int,
    width: int,
    cfg: dict,
) -> torch.Tensor:
    """x [T, H] -> h [R, I] in sorted row order (rows of padding are left unwritten)."""
    R = sorted_pairs.numel()
    h = torch.empty(R, width, dtype=x.dtype, device=x.device)
    grid = (block_expert.numel(), triton.cdiv(width, cfg["BLOCK_N"]))
    _gate_up_kernel[grid](
        x,
        w,
        h,
        sorted_pairs,
        block_expert,
        x.shape[0] * top_k,
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


def down(
    h: torch.Tensor,
    w: torch.Tensor,
    ws: WeightStrides,
    sorted_pairs: torch.Tensor,
    block_expert: torch.Tensor,
    route_weights: torch.Tensor,
    hidden: int,
    cfg: dict,
) -> torch.Tensor:
    """h [R, I] -> pair_out [P, H] fp32, weighted by route_weights [P]; rows of dropped pairs unwritten."""
    P = route_weights.numel()
    out = torch.empty(P, hidden, dtype=torch.float32, device=h.device)
    grid = (block_expert.numel(), triton.cdiv(hidden, cfg["BLOCK_N"]))
    _down_kernel[grid](
        h,
        w,
        out,
        sorted_pairs,
        block_expert,
        route_weights,
        P,
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
