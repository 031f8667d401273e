"""Time one MoE experts layer under each experts implementation (synthetic weights and routing).

Shapes: T tokens, k slots, E experts, H hidden, I expert width; x [T, H], ids/weights [T, k].
Defaults are EMO's widths (H = 2048, I = 1024) with 16 experts and top-8, the pruned size that runs
on small machines. Bytes and FLOPs count what the layer must do: the weights of the distinct experts
the routing touches (read once), and 2 * 3 * H * I multiply-adds... per (token, slot) pair.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from emo_prune.bench.measure import machine_description, measure_read_bandwidth, time_call
from emo_prune.bench.report import BenchReport, BenchRow
from emo_prune.common.constants import BENCH_IMPLEMENTATIONS as IMPLEMENTATIONS  # noqa: E402
from emo_prune.common.units import gigabytes

# batched_mm gathers a full copy of the weights for every (token, slot) pair: 64 tokens x top-8 of
# EMO-width experts would allocate 6.4 GB. Rows above this many gathered bytes are skipped.
BATCHED_MM_MAX_BYTES = 2 << 30


def synthetic_experts(hidden: int, width: int, experts: int, dtype: torch.dtype, device: torch.device, seed: int = 0):
    """An OLMoE experts module (the fused [E, 2I, H] / [E, H, I] convention) with N(0, 0.02) weights."""
    from transformers import OlmoeConfig
    from transformers.models.olmoe.modeling_olmoe import OlmoeExperts

    config = OlmoeConfig(hidden_size=hidden, intermediate_size=width, num_experts=experts, num_experts_per_tok=1)
    with torch.device(device):
        module = OlmoeExperts(config).to(dtype)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        for p in (module.gate_up_proj, module.down_proj):
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float32).mul_(0.02).to(dtype))
    return module.requires_grad_(False)


def synthetic_routing(tokens: int, experts: int, top_k: int, dtype: torch.dtype, device: torch.device, seed: int = 0):
    """Softmax top-k of N(0, 1) logits: (ids [T, k] int64, weights [T, k] in dtype, like OLMoE's router)."""
    gen = torch.Generator(device="cpu").manual_seed(seed + tokens)
    probs = torch.randn(tokens, experts, generator=gen).softmax(dim=-1)
    weights, ids = torch.topk(probs, top_k, dim=-1)
    return ids.to(device), weights.to(dtype).to(device)


def skip_reason(impl: str, device: torch.device, pairs: int, expert_bytes: int) -> str | None:
    if impl == "emo_cpu" and device.type != "cpu":
        return "emo_cpu runs on CPU tensors"
    if impl == "emo_triton":
        from emo_prune.runtime import triton_usable

        if device.type != "cuda" or not triton_usable(device):
            return "emo_triton needs a CUDA device with triton"
    if impl == "batched_mm" and pairs * expert_bytes > BATCHED_MM_MAX_BYTES:
        return f"batched_mm would gather {gigabytes(pairs * expert_bytes)} of weight copies"
    return None


def bench_experts(
    module: torch.nn.Module,
    top_k: int,
    tokens: Sequence[int],
    impls: Sequence[str] = IMPLEMENTATIONS,
    bandwidth_gb_s: float | None = None,
    min_seconds: float = 0.5,
    seed: int = 0,
) -> list[BenchRow]:
    """Rows for one experts module (synthetic or from a real model), each tokens x each impl."""
    import emo_prune.runtime  # noqa: F401  (registers emo_cpu / emo_triton)

    device = module.gate_up_proj.device
    dtype = module.gate_up_proj.dtype
    experts = module.gate_up_proj.shape[0]
    hidden = module.down_proj.shape[1] if not getattr(module, "is_transposed", False) else module.down_proj.shape[2]
    expert_bytes = (module.gate_up_proj[0].numel() + module.down_proj[0].numel()) * module.gate_up_proj.element_size()
    macs_per_pair = module.gate_up_proj[0].numel() + module.down_proj[0].numel()
    previous = module.config._experts_implementation
    rows = []
    for t in tokens:
        gen = torch.Generator(device="cpu").manual_seed(seed)
        x = torch.randn(t, hidden, generator=gen).to(dtype).to(device)
        ids, weights = synthetic_routing(t, experts, top_k, dtype, device, seed)
        distinct = int(ids.unique().numel())
        for impl in impls:
            row = BenchRow(scope="layer", impl=impl, tokens=t, distinct_experts=distinct)
            rows.append(row)
            row.skipped = skip_reason(impl, device, t * top_k, expert_bytes)
            if row.skipped:
                continue
            module.config._experts_implementation = impl
            try:
                with torch.inference_mode():
                    timing = time_call(lambda: module(x, ids, weights), device, min_seconds)
            except Exception as error:  # a broken implementation is a result, not a crash
                row.skipped = f"{type(error).__name__}: {error}"
                continue
            row.set_time(timing, distinct * expert_bytes, 2.0 * t * top_k * macs_per_pair, bandwidth_gb_s)
    module.config._experts_implementation = previous
    return rows


def bench_layer(
    *,
    hidden: int = 2048,
    width: int = 1024,
    experts: int = 16,
    top_k: int = 8,
    tokens: Sequence[int] = (1, 8, 64),
    dtype: torch.dtype = torch.bfloat16,
    impls: Sequence[str] = IMPLEMENTATIONS,
    device: torch.device | str = "cpu",
    measure_bandwidth: bool = True,
    min_seconds: float = 0.5,
    seed: int = 0,
) -> BenchReport:
    """One synthetic MoE layer, every implementation, in one run (with the machine's read bandwidth)."""
    device = torch.device(device)
    bandwidth = measure_read_bandwidth(device) if measure_bandwidth else None
    module = synthetic_experts(hidden, width, experts, dtype, device, seed)
    report = BenchReport(
        machine=machine_description(device),
        read_bandwidth_gb_s=bandwidth,
        settings=dict(
            hidden=hidden,
            width=width,
            experts=experts,
            top_k=top_k,
            tokens=list(tokens),
            dtype=str(dtype).removeprefix("torch."),
            impls=list(impls),
        ),
    )
    report.rows = bench_experts(module, top_k, tokens, impls, bandwidth, min_seconds, seed)
    report.fill_speedups()
    return report
