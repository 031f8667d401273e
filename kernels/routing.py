"""Triton routing: fp32 softmax + top-k over the kept experts, EMO semantics (emo_prune/routing/rules.py).

Shapes: T tokens, E experts, k = K_ROUTED + N_FIXED experts per token.
  logits [T, E] any float dtype -> weights [T, k] fp32, ids [T, k] int64.
Columns: the K_ROUTED routed picks by descending probability, then the N_FIXED always-on experts
(always-active ids in the order given, or shared experts by descending weight): exactly the order of
the torch reference `emo_prune.routing.route`, which the tests hold this kernel to.

One program owns BLOCK_T tokens and the whole expert row (BLOCK_E >= E), so softmax and top-k never
leave registers. Top-k is k rounds of (row max, lowest column holding it, knock it out): k <= 16 in
every supported family, and a bitonic sort of BLOCK_E columns would cost more for k << E.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

# Tokens per program. 16 keeps [BLOCK_T, BLOCK_E] at <= 2048 fp32 values for E = 128 (16 registers
# a thread at 4 warps); not tuned on a GPU (none was available when this was written).
BLOCK_T = 16


@triton.jit
def _masked_softmax(x, mask):
    """Softmax of each row of x over the columns where mask holds; 0 elsewhere. x fp32 [BT, BE]."""
    x = tl.where(mask, x, float("-inf"))
    row_max = tl.max(x, axis=1)
    num = tl.where(mask, tl.exp(x - row_max[:, None]), 0.0)
    return num / tl.sum(num, axis=1)[:, None]


@triton.jit
def _pick_max(cand, cols, BLOCK_E: tl.constexpr):
    """(value, lowest column holding it) of each row's max; cand fp32 [BT, BE] -> ([BT], [BT])."""
    best = tl.max(cand, axis=1)
    idx = tl.min(tl.where(cand == best[:, None], cols[None, :], BLOCK_E), axis=1)
    return best, idx


@triton.jit
def _route_kernel(
    logits_ptr,
    weights_ptr,
    ids_ptr,
    fixed_ids_ptr,
    T,
    E,
    stride_lt,
    stride_le,
    N_ROUTED_COLS,  # shared path: the routed block is columns [0, N_ROUTED_COLS)
    K_ROUTED: tl.constexpr,  # picks made by top-k
    N_FIXED: tl.constexpr,  # always-on experts appended after the picks
    SHARED: tl.constexpr,  # path 2: separate softmax for the shared tail, which is the fixed set
    ALWAYS_ACTIVE: tl.constexpr,  # path 1: fixed ids read from fixed_ids_ptr
    NORM: tl.constexpr,
    BLOCK_T: tl.constexpr,
    BLOCK_E: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)  # [BT]
    cols = tl.arange(0, BLOCK_E)  # [BE]
    kcols = tl.arange(0, BLOCK_K)  # [BK]
    row_ok = rows < T
    col_ok = cols < E
    x = tl.load(
        logits_ptr + rows[:, None] * stride_lt + cols[None, :] * stride_le,
        mask=row_ok[:, None] & col_ok[None, :],
        other=0.0,
    ).to(tl.float32)  # [BT, BE]

    if SHARED:
        routed_col = cols < N_ROUTED_COLS
        shared_col = col_ok & (cols >= N_ROUTED_COLS)
        probs = tl.where(
            routed_col[None, :],
            _masked_softmax(x, routed_col[None, :]),
            _masked_softmax(x, shared_col[None, :]),
        )
        cand = tl.where(routed_col[None, :], probs, float("-inf"))
    else:
        probs = _masked_softmax(x, col_ok[None, :])
        cand = tl.where(col_ok[None, :], probs, float("-inf"))
        if ALWAYS_ACTIVE:
            for j in tl.static_range(N_FIXED):
                cand = tl.where(cols[None, :] == tl.load(fixed_ids_ptr + j), float("-inf"), cand)

    out_w = tl.zeros([BLOCK_T, BLOCK_K], dtype=tl.float32)
    out_id = tl.zeros([BLOCK_T, BLOCK_K], dtype=tl.int64)
    for j in tl.static_range(K_ROUTED):
        best, idx = _pick_max(cand, cols, BLOCK_E)
        out_w = tl.where(kcols[None, :] == j, best[:, None], out_w)
        out_id = tl.where(kcols[None, :] == j, idx.to(tl.int64)[:, None], out_id)
        cand = tl.where(cols[None, :] == idx[:, None], float("-inf"), cand)

    if NORM and K_ROUTED > 0:
        if SHARED:  # the shared block is normalized by its own softmax already
            routed_sum = tl.sum(tl.where(kcols[None, :] < K_ROUTED, out_w, 0.0), axis=1)
            out_w = tl.where(kcols[None, :] < K_ROUTED, out_w / routed_sum[:, None], out_w)

    if SHARED:
        fixed = tl.where(cols[None, :] >= N_ROUTED_COLS, probs, float("-inf"))
        fixed = tl.where(col_ok[None, :], fixed, float("-inf"))
        for j in tl.static_range(N_FIXED):
            best, idx = _pick_max(fixed, cols, BLOCK_E)
            out_w = tl.where(kcols[None, :] == K_ROUTED + j, best[:, None], out_w)
            out_id = tl.where(kcols[None, :] == K_ROUTED + j, idx.to(tl.int64)[:, None], out_id)
            fixed = tl.where(cols[None, :] == idx[:, None], float("-inf"), fixed)
    if ALWAYS_ACTIVE:
        for j in tl.static_range(N_FIXED):
            fid = tl.load(fixed_ids_ptr + j)
            w = tl.sum(tl.where(cols[None, :] == fid, probs, 0.0), axis=1)  # [BT]
            out_w = tl.where(kcols[None, :] == K_ROUTED + j, w[:, None], out_w)
            out_id = tl.where(kcols[None, :] == K_ROUTED + j, fid.to(tl.int64), out_id)

    if NORM and not SHARED:
        valid_k = kcols[None, :] < K_ROUTED + N_FIXED
        total = tl.sum(tl.where(valid_k, out_w, 0.0), axis=1)
        out_w = out_w / total[:, None]

    k = K_ROUTED + N_FIXED
    out_mask = row_ok[:, None] & (kcols[None, :] < k)
    out_off = rows[:, None] * k + kcols[None, :]
    tl.store(weights_ptr + out_off, out_w, mask=out_mask)
    tl.store(ids_ptr + out_off, out_id, mask=out_mask)


@functools.lru_cache(maxsize=64)
def _fixed_ids(always_active: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """The always-active ids on the device, copied once (a copy per call would sync with the host)."""
    return torch.tensor(list(always_active) or [0], dtype=torch.int32, device=device)


def route_topk(
    logits: torch.Tensor,
    top_k: int,
    num_shared: int = 0,
    always_active: tuple[int, ...] = (),
    norm_topk_prob: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Launch the routing kernel. logits [T, E] -> (weights [T, k] fp32, ids [T, k] int64).

    Arguments follow `emo_prune.routing.RoutingSpec` (validated there); always_active wins over
    num_shared, as in the priority order of docs/emo-checkpoint.md ("Forward").
    """
    T, E = logits.shape
    n_fixed = len(always_active) if always_active else num_shared
    weights = torch.empty(T, top_k, dtype=torch.float32, device=logits.device)
    ids = torch.empty(T, top_k, dtype=torch.int64, device=logits.device)
    if T == 0:
        return weights, ids
    fixed_ids = _fixed_ids(tuple(always_active), logits.device)
    grid = (triton.cdiv(T, BLOCK_T),)
    _route_kernel[grid](
        logits,
        weights,
        ids,
        fixed_ids,
        T,
        E,
        logits.stride(0),
        logits.stride(1),
        E - num_shared,
        K_ROUTED=top_k - n_fixed,
        N_FIXED=n_fixed,
        SHARED=bool(num_shared) and not always_active,
        ALWAYS_ACTIVE=bool(always_active),
        NORM=norm_topk_prob,
        BLOCK_T=BLOCK_T,
        BLOCK_E=max(16, triton.next_power_of_2(E)),
        BLOCK_K=max(16, triton.next_power_of_2(top_k)),
    )
    return weights, ids
