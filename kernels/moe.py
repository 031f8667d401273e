"""The fused experts forward on Triton: path choice, tile configs and launch order.

Shapes: T tokens, k slots, P = T*k pairs, E experts, H hidden, I expert width.
  x [T, H], gate_up [E, 2I, H], down [E, H, I] (transposed: [E, H, 2I], [E, I, H]),
  ids [T, k] int, route_weights [T, k] any float -> out [T, H] in x's dtype.

  decode (few T):  decode.gate_up -> decode.down -> reduce.sum_topk                   (3 kernels)
  sorted (else):   align (2 kernels + 6 small torch index ops) -> grouped_gemm.gate_up
                   -> grouped_gemm.down -> reduce.sum_topk

Nothing here syncs with the host, so a caller may capture it in a CUDA graph for fixed shapes.
"""

from __future__ import annotations

import os

import torch

from emo_prune_kernels import align, decode, grouped_gemm, reduce


def interpreting() -> bool:
    """Kernels run in the Triton interpreter (read once per call; the kernels read it at import)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def can_run_on(device: torch.device) -> bool:
    """Kernels launch on CUDA devices, and on CPU tensors only under the interpreter."""
    return device.type == "cuda" or (device.type == "cpu" and interpreting())


# Decode while it streams at most this much more weight than the sorted path would: decode reads one
# expert panel per pair, the sorted path each distinct expert once (but costs 2 more launches and the
# padding). Reasoned, not measured: no GPU was available to tune the crossover.
DECODE_MAX_EXTRA_TRAFFIC = 1.15


def use_decode(num_tokens: int, top_k: int, num_experts: int) -> bool:
    """One token always (its k experts are distinct); more while pairs rarely share an expert: with
    uniform routing T tokens touch E * (1 - (1 - k/E)^T) distinct experts. E = 128, k = 8: up to
    5 tokens; E = 16, k = 8: 1 token."""
    if num_tokens <= 1:
        return True
    distinct = num_experts * (1.0 - (1.0 - top_k / num_experts) ** num_tokens)
    return num_tokens * top_k <= DECODE_MAX_EXTRA_TRAFFIC * distinct


def sorted_config(num_pairs: int, num_experts: int, fp32: bool) -> dict:
    """Tiles of the sorted path. Interpreter: 16-row blocks (tiles >= 16 so the same shapes compile on a
    GPU) and wide N/K so the tiny test shapes need few program instances (10-70 ms each there).
    GPU: BLOCK_M follows the expected rows per expert (vLLM's default heuristic shape); untuned."""
    if interpreting():
        return dict(BLOCK_M=16, BLOCK_N=64, BLOCK_K=64, UPCAST=True, DOT_PRECISION="ieee")
    rows_per_expert = num_pairs / max(num_experts, 1)
    block_m = 16 if rows_per_expert <= 16 else 32 if rows_per_expert <= 96 else 64
    return dict(
        BLOCK_M=block_m,
        BLOCK_N=64,
        BLOCK_K=64,
        UPCAST=False,
        DOT_PRECISION="ieee" if fp32 else "tf32",
        num_warps=4,
        num_stages=2 if fp32 else 3,
    )


def decode_config() -> dict:
    """Tiles of the decode path: one [BLOCK_N, BLOCK_K] weight panel per step. GPU values keep 128
    bf16 (256 B) contiguous along K per row for coalesced loads; untuned."""
    if interpreting():
        return dict(BLOCK_N=64, BLOCK_K=64)
    return dict(BLOCK_N=32, BLOCK_K=128, num_warps=4)


def fused_experts(
    x: torch.Tensor,
    gate_up: torch.Tensor,
    down: torch.Tensor,
    ids: torch.Tensor,
    route_weights: torch.Tensor,
    *,
    transposed: bool = False,
    concatenated: bool = True,
    path: str = "auto",
) -> torch.Tensor:
    """y[t] = sum_j w[t, j] * down_e(silu(gate_e x_t) * up_e x_t), e = ids[t, j].

    path: "auto", "decode" or "sorted" (tests force each on the same shapes).
    """
    out_dtype = x.dtype
    x = x.to(gate_up.dtype)  # tl.dot takes one operand dtype (autocast can hand fp32 activations)
    T, H = x.shape
    E = gate_up.shape[0]
    top_k = ids.shape[1]
    width = (gate_up.shape[2] if transposed else gate_up.shape[1]) // 2  # I
    P = T * top_k
    if T == 0:
        return torch.zeros(0, H, dtype=out_dtype, device=x.device)
    gu_strides = grouped_gemm.WeightStrides.of(gate_up, transposed, gated_concatenated=concatenated)
    dn_strides = grouped_gemm.WeightStrides.of(down, transposed)
    flat_w = route_weights.reshape(-1)  # [P]
    if path == "decode" or (path == "auto" and use_decode(T, top_k, E)):
        cfg = decode_config()
        h = decode.decode_gate_up(x, gate_up, gu_strides, ids, E, width, cfg)  # [P, I]
        pair_out = decode.decode_down(h, down, dn_strides, ids, flat_w, E, H, cfg)  # [P, H] fp32
    elif path in ("auto", "sorted"):
        cfg = sorted_config(P, E, fp32=gate_up.dtype == torch.float32)
        sorted_pairs, block_expert = align.align_pairs(ids, E, cfg["BLOCK_M"])  # [R], [R / BLOCK_M]
        h = grouped_gemm.gate_up(x, gate_up, gu_strides, sorted_pairs, block_expert, top_k, width, cfg)
        pair_out = grouped_gemm.down(h, down, dn_strides, sorted_pairs, block_expert, flat_w, H, cfg)
    else:
        raise ValueError(f"path must be 'auto', 'decode' or 'sorted', not {path!r}")
    return reduce.sum_topk(pair_out, ids, E, out_dtype)  # [T, H]
