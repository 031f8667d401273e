"""Time a whole model forward (and its first MoE layer alone) under each experts implementation.

Shapes: one sequence of T tokens, input_ids [1, T]. Bytes per forward = every non-expert weight once
(the input embedding only for its T rows, counted as 0) + the weights of the distinct experts each
layer's routing touches; FLOPs = 2 * T * non-expert matmul weights + 2 * (T*k pairs) * 3*H*I per layer
(attention scores ignored: small at these lengths). Distinct experts come from hooks on an eager run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from emo_prune.bench.layer import IMPLEMENTATIONS, bench_experts, skip_reason
from emo_prune.bench.measure import machine_description, measure_read_bandwidth, time_call
from emo_prune.bench.report import BenchReport, BenchRow
from emo_prune.errors import CheckpointError


def _experts_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in model.modules() if hasattr(m, "gate_up_proj") and hasattr(m, "down_proj")]


def _expert_bytes(module: torch.nn.Module) -> int:
    return (module.gate_up_proj[0].numel() + module.down_proj[0].numel()) * module.gate_up_proj.element_size()


def _dense_cost(model: torch.nn.Module, experts: list[torch.nn.Module]) -> tuple[int, int]:
    """(bytes, multiply-adds per token) of the weights outside the experts, input embedding excluded."""
    skip = {id(p) for m in experts for p in m.parameters()}
    embedding = model.get_input_embeddings()
    skip |= {id(p) for p in embedding.parameters()} if embedding is not None else set()
    params = [p for p in model.parameters() if id(p) not in skip]
    return sum(p.numel() * p.element_size() for p in params), sum(p.numel() for p in params if p.dim() >= 2)


def _distinct_per_layer(model: torch.nn.Module, experts: list[torch.nn.Module], input_ids: torch.Tensor) -> list[int]:
    seen: list[int] = []
    hooks = [m.register_forward_pre_hook(lambda _m, args: seen.append(int(args[1].unique().numel()))) for m in experts]
    try:
        model.set_experts_implementation("eager")
        with torch.inference_mode():
            model(input_ids=input_ids)
    finally:
        for h in hooks:
            h.remove()
    return seen


def load_model(model_dir: str | Path, device: torch.device | str, dtype: str | torch.dtype = "auto") -> torch.nn.Module:
    import emo_prune.runtime  # noqa: F401  (registers emo_cpu / emo_triton)
    from emo_prune.models.loading import load_whole

    return load_whole(model_dir, dtype, str(device), impl="eager").requires_grad_(False)


def bench_model(
    model_dir: str | Path,
    *,
    tokens: Sequence[int] = (1, 8, 64, 512),
    impls: Sequence[str] = IMPLEMENTATIONS,
    device: torch.device | str = "cpu",
    dtype: str | torch.dtype = "auto",
    measure_bandwidth: bool = True,
    include_layer: bool = True,
    min_seconds: float = 0.5,
    seed: int = 0,
) -> BenchReport:
    """Rows for the model's first MoE layer (synthetic routing) and the whole forward, per impl."""
    device = torch.device(device)
    model = load_model(model_dir, device, dtype)
    experts = _experts_modules(model)
    if not experts:
        raise CheckpointError(f"{model_dir}: no fused experts module (gate_up_proj / down_proj) in this model")
    top_k = int(model.config.num_experts_per_tok)
    bandwidth = measure_read_bandwidth(device) if measure_bandwidth else None
    dense_bytes, dense_macs = _dense_cost(model, experts)
    report = BenchReport(
        machine=machine_description(device),
        read_bandwidth_gb_s=bandwidth,
        settings=dict(
            model=str(model_dir),
            model_type=model.config.model_type,
            tokens=list(tokens),
            dtype=str(model.dtype).removeprefix("torch."),
            impls=list(impls),
            moe_layers=len(experts),
        ),
    )
    if include_layer:
        report.rows += bench_experts(experts[0], top_k, tokens, impls, bandwidth, min_seconds, seed)
    vocab = model.config.vocab_size
    for t in tokens:
        input_ids = torch.randint(0, vocab, (1, t), generator=torch.Generator().manual_seed(seed)).to(device)
        distinct = _distinct_per_layer(model, experts, input_ids)
        bytes_read = dense_bytes + sum(d * _expert_bytes(m) for d, m in zip(distinct, experts, strict=True))
        flops = 2.0 * t * dense_macs + sum(
            2.0 * t * top_k * (m.gate_up_proj[0].numel() + m.down_proj[0].numel()) for m in experts
        )
        for impl in impls:
            row = BenchRow(scope="model", impl=impl, tokens=t, distinct_experts=sum(distinct))
            report.rows.append(row)
            row.skipped = skip_reason(impl, device, t * top_k, max(_expert_bytes(m) for m in experts))
            if row.skipped:
                continue
            try:
                model.set_experts_implementation(impl)
                with torch.inference_mode():
                    timing = time_call(lambda: model(input_ids=input_ids), device, min_seconds)
            except Exception as error:  # a broken implementation is a result, not a crash
                row.skipped = f"{type(error).__name__}: {error}"
                continue
            row.set_time(timing, bytes_read, flops, bandwidth)
    model.set_experts_implementation("eager")
    report.fill_speedups()
    return report
