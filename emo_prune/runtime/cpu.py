"""`emo_cpu`: the experts forward for CPUs (edge builds), bf16/fp16 or fp32 storage.

Shapes: T tokens, k slots, P = T*k pairs, E experts, H hidden, I expert width.
  x [T, H], gate_up [E, 2I, H], down [E, H, I] (layout flags as in layout.py), ids [T, k],
  weights [T, k] -> y [T, H] in x's dtype.

One token (decode) is memory-bound: only the k selected experts are read, once, with the all-core
one-row products of cpu_matmul (fp32 bmm slices, low-precision gemv without oneDNN), into preallocated
[k, 2I] / [k, H] buffers, then one [1, k] @ [k, H] weighted sum. Several tokens: pairs are sorted by
expert once (one host sync for the counts), each expert with tokens runs two GEMMs on its gathered
rows, and results accumulate in fp32. Low-precision GEMMs of several rows run natively where oneDNN has
bf16/fp16 kernels, else in fp32 tiles (cpu_matmul): never in the slow low-precision path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from emo_prune.errors import RuntimeSetupError
from emo_prune.runtime.cpu_matmul import lowp_gemm_native, matmul, matvec, onednn_off
from emo_prune.runtime.layout import ExpertStack, interface_entry, split_gate_up


def cpu_experts(
    x: torch.Tensor, stack: ExpertStack, ids: torch.Tensor, weights: torch.Tensor, *, lowp_gemm: str | None = None
) -> torch.Tensor:
    """Weighted sum over each token's k experts of down(silu(gate x) * up x). lowp_gemm: see
    `cpu_matmul.lowp_gemm_native` ("auto", "native", "fp32"; None reads the environment)."""
    if x.device.type != "cpu":
        raise RuntimeSetupError(f'emo_cpu runs on CPU tensors, got {x.device}; use experts_implementation="emo_triton"')
    gate_up, down = stack.linear_views()  # [E, 2I, H], [E, H, I]
    concatenated = stack.concatenated
    if x.shape[0] == 0:
        return torch.zeros_like(x)
    if x.shape[0] == 1:
        return _one_token(x, gate_up, down, ids, weights, concatenated)
    native = lowp_gemm_native(gate_up.dtype, lowp_gemm)
    return _grouped(x, gate_up, down, ids, weights, concatenated, native)


def _one_token(x, gate_up, down, ids, weights, concatenated: bool) -> torch.Tensor:
    num_experts = gate_up.shape[0]
    picks = [(j, e) for j, e in enumerate(ids[0].tolist()) if 0 <= e < num_experts]
    dtype = gate_up.dtype
    xw = x.to(dtype)
    projected = torch.empty(len(picks), gate_up.shape[1], dtype=dtype)  # [n, 2I]
    expert_out = torch.empty(len(picks), down.shape[1], dtype=dtype)  # [n, H]
    with onednn_off(dtype != torch.float32):
        for row, (_, e) in enumerate(picks):
            matvec(xw, gate_up[e], out=projected[row : row + 1])
        gate, up = split_gate_up(projected, concatenated)  # [n, I] each
        hidden = F.silu(gate) * up  # [n, I]
        for row, (_, e) in enumerate(picks):
            matvec(hidden[row : row + 1], down[e], out=expert_out[row : row + 1])
    slot_weights = weights[0, [j for j, _ in picks]].float()  # [n]
    return (slot_weights[None, :] @ expert_out.float()).to(x.dtype)  # [1, H]


def _grouped(x, gate_up, down, ids, weights, concatenated: bool, native: bool) -> torch.Tensor:
    T, top_k = ids.shape
    num_experts = gate_up.shape[0]
    flat = ids.reshape(-1)  # [P]
    key = torch.where((flat >= 0) & (flat < num_experts), flat, num_experts)  # sentinels sort last
    order = torch.argsort(key, stable=True)  # [P] pairs grouped by expert
    counts = torch.bincount(key, minlength=num_experts + 1)[:num_experts].tolist()
    token_of = order // top_k  # [P]
    pair_weight = weights.reshape(-1)[order].float()  # [P]
    y = torch.zeros(T, x.shape[1], dtype=torch.float32)  # [T, H]
    start = 0
    for e, count in enumerate(counts):
        if count == 0:
            continue
        rows = slice(start, start + count)
        start += count
        tokens = token_of[rows]  # [c]
        out = _expert(x.index_select(0, tokens), gate_up[e], down[e], concatenated, native)  # [c, H]
        y.index_add_(0, tokens, out.float().mul_(pair_weight[rows, None]))
    return y.to(x.dtype)


def _expert(xs: torch.Tensor, gate_up: torch.Tensor, down: torch.Tensor, concatenated: bool, native: bool):
    """One expert on its c gathered rows: xs [c, H] -> [c, H] (weight dtype, or fp32 for fp32 tiles)."""
    if xs.shape[0] == 1:
        dtype = gate_up.dtype
        projected = torch.empty(1, gate_up.shape[0], dtype=dtype)
        out = torch.empty(1, down.shape[0], dtype=dtype)
        with onednn_off(dtype != torch.float32):
            matvec(xs.to(dtype), gate_up, out=projected)
            gate, up = split_gate_up(projected, concatenated)
            return matvec(F.silu(gate) * up, down, out=out)
    gate, up = split_gate_up(matmul(xs, gate_up, native), concatenated)  # [c, I] each
    return matmul(F.silu(gate) * up, down, native)


emo_cpu_experts_forward = interface_entry("emo_cpu", cpu_experts)
