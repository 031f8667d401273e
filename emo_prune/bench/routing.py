"""Time routing (softmax + top-k with EMO's shared expert) on the torch reference and the Triton kernel.

Shapes: logits [T, E] -> weights, ids [T, k]. Part of the GPU per-layer budget (docs/kernels.md: 1 token
<= 45 us per layer including routing), so it is reported next to the experts rows (scope "routing").
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from emo_prune.bench.measure import time_call
from emo_prune.bench.report import BenchRow
from emo_prune.routing import RoutingSpec


def bench_routing(
    tokens: Sequence[int],
    experts: int,
    top_k: int,
    num_shared: int = 1,
    device: torch.device | str = "cuda",
    min_seconds: float = 0.3,
) -> list[BenchRow]:
    from emo_prune.runtime import dispatch_route, triton_usable

    device = torch.device(device)
    spec = RoutingSpec(num_experts=experts, top_k=top_k, num_shared=num_shared)
    rows = []
    for t in tokens:
        logits = torch.randn(t, experts, device=device, dtype=torch.bfloat16)
        for backend in ("torch", "triton"):
            row = BenchRow(scope="routing", impl=backend, tokens=t)
            rows.append(row)
            if backend == "triton" and (device.type != "cuda" or not triton_usable(device)):
                row.skipped = "Triton routing needs a CUDA device"
                continue
            timing = time_call(lambda: dispatch_route(logits, spec, backend=backend), device, min_seconds)
            row.set_time(timing, logits.numel() * logits.element_size(), 0.0, None)
    return rows
