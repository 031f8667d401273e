"""The experts forward used while profiling: the model's own expert weights, plus each pair's output norm.

Shapes: T tokens, k experts per token, P = T*k (token, expert) pairs, H hidden, I expert width,
E experts in the layer.

REAP saliency needs ||down(act(gate x) * up x)|| for every routed pair. Recomputing it beside the
model's experts would double the expert FLOPs, so during profiling the experts module runs THIS
forward instead (same weights, same math as transformers' eager / grouped_mm forwards): pairs sorted
by expert, one matmul pair per expert (or one grouped_mm on CUDA), the unweighted outputs' norms
taken before the routing weights are applied, then the weighted sum over each token's k picks.
On CPU the per-expert loop over contiguous slices is ~2x faster than torch's grouped_mm
(32 experts, H 512, I 1024, 4096 pairs: 0.26 s vs 0.51 s on this project's 2-core machine).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from emo_prune.errors import RuntimeSetupError
from emo_prune.runtime.cpu_matmul import lowp_gemm_native
from emo_prune.runtime.cpu_matmul import matmul as cpu_matmul

# record(sorted expert ids [P], sorted weights [P], sorted output norms [P] fp32, token of each sorted pair [P])
Recorder = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], None]


def check_experts_module(module: nn.Module, where: str) -> None:
    """Refuse experts layouts this forward does not implement (biases, transposed or interleaved weights)."""
    fused = getattr(module, "gate_up_proj", None) is not None and getattr(module, "down_proj", None) is not None
    if (
        not fused
        or getattr(module, "has_bias", False)
        or getattr(module, "is_transposed", False)
        or not getattr(module, "is_concatenated", True)
        or not getattr(module, "has_gate", True)
    ):
        raise RuntimeSetupError(
            f"{where}: experts module {type(module).__name__} is not the fused gate_up_proj [E, 2I, H] / down_proj "
            f"[E, H, I] layout without bias that profiling instruments"
        )


def _gated(module: nn.Module, gate_up: torch.Tensor) -> torch.Tensor:
    apply_gate = getattr(module, "_apply_gate", None)
    if apply_gate is not None:
        return apply_gate(gate_up)
    gate, up = gate_up.chunk(2, dim=-1)
    return module.act_fn(gate) * up


def expert_outputs(module: nn.Module, x: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Unweighted expert outputs for pairs sorted by expert: x [P, H], counts [E] -> [P, H]."""
    gate_up_w, down_w = module.gate_up_proj, module.down_proj  # [E, 2I, H], [E, H, I]
    if x.is_cuda and x.dtype == torch.bfloat16 and hasattr(F, "grouped_mm"):
        offsets = torch.cumsum(counts, dim=0, dtype=torch.int32)
        hidden = _gated(module, F.grouped_mm(x, gate_up_w.transpose(-2, -1), offs=offsets))  # [P, I]
        return F.grouped_mm(hidden, down_w.transpose(-2, -1), offs=offsets)  # [P, H]
    out = torch.empty_like(x)
    if x.device.type != "cpu":
        matmul = lambda rows, w: F.linear(rows, w)  # noqa: E731
    else:  # the CPU experts path's products: bounded oneDNN kernel shapes (cpu_matmul.native_rows)
        native = lowp_gemm_native(gate_up_w.dtype)
        matmul = lambda rows, w: cpu_matmul(rows, w, native).to(x.dtype)  # noqa: E731
    start = 0
    for expert, count in enumerate(counts.tolist()):
        if count:
            stop = start + count
            hidden = _gated(module, matmul(x[start:stop], gate_up_w[expert]))  # [c, I]
            out[start:stop] = matmul(hidden, down_w[expert])  # [c, H]
            start = stop
    return out


def instrumented_forward(module: nn.Module, record: Recorder) -> Callable[..., torch.Tensor]:
    """A replacement `forward(hidden [T, H], top_k_index [T, k], top_k_weights [T, k]) -> [T, H]`."""

    def forward(hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor) -> torch.Tensor:
        T, k = top_k_index.shape
        flat_ids = top_k_index.reshape(-1)  # [P]
        order = torch.argsort(flat_ids, stable=True)  # [P], pairs grouped by expert
        sorted_ids = flat_ids[order]
        counts = torch.bincount(sorted_ids, minlength=module.num_experts)  # [E]
        token_of = order // k  # [P]
        y = expert_outputs(module, hidden_states[token_of], counts)  # [P, H] unweighted
        norms = torch.linalg.vector_norm(y, dim=-1, dtype=torch.float32)  # [P]
        weights = top_k_weights.reshape(-1)[order]  # [P]
        record(sorted_ids, weights, norms, token_of)
        weighted = torch.empty_like(y)
        weighted[order] = y * weights[:, None].to(y.dtype)  # back to token-major order
        return weighted.view(T, k, -1).sum(dim=1).to(hidden_states.dtype)  # [T, H]

    return forward
