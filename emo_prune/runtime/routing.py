"""The routing entry point models call: the Triton kernel on CUDA, the torch reference elsewhere.

Shapes: logits [T, E] -> (weights [T, k] fp32, ids [T, k] int64), exactly as `emo_prune.routing.route` (the reference it dispatches to off CUDA)
(the kernel is tested to give the same ids and fp32-close weights on all three EMO paths).
"""

from __future__ import annotations

import torch

from emo_prune import routing as reference
from emo_prune.errors import RuntimeSetupError
from emo_prune.routing import RoutingSpec
from emo_prune.runtime.triton_backend import kernels, triton_usable

BACKENDS = ("auto", "triton", "torch")


def dispatch_route(logits: torch.Tensor, spec: RoutingSpec, backend: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """backend: "auto" (Triton on CUDA when available, else torch), "triton" (forced; also runs under
    TRITON_INTERPRET=1 on CPU), "torch" (emo_prune.routing.route)."""
    if backend not in BACKENDS:
        raise RuntimeSetupError(f"routing backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    use_triton = backend == "triton" or (backend == "auto" and logits.is_cuda and triton_usable(logits.device))
    if not use_triton:
        return reference.route(logits, spec)
    if not triton_usable(logits.device):
        raise RuntimeSetupError(f"Triton routing cannot run on {logits.device} (needs CUDA or TRITON_INTERPRET=1)")
    return kernels("routing").route_topk(logits, spec.top_k, spec.num_shared, tuple(spec.always_active), spec.norm_topk_prob)
