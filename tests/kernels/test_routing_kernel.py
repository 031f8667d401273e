"""The Triton routing kernel (under the interpreter on CPU) against emo_prune.routing.route."""

from __future__ import annotations

import pytest
import torch
from moe_cases import tie_free_logits

from emo_prune.errors import RuntimeSetupError
from emo_prune.routing import RoutingSpec, route
from emo_prune.runtime import dispatch_route as runtime_route

SPECS = [
    # plain top-k of one softmax (OLMoE, Qwen): E not a power of two
    RoutingSpec(num_experts=12, top_k=4),
    # plain with renormalised weights (Mixtral, Qwen3)
    RoutingSpec(num_experts=12, top_k=4, norm_topk_prob=True),
    # k == kept experts after heavy pruning: every expert picked, order by weight
    RoutingSpec(num_experts=3, top_k=3),
    # EMO release path: 15 routed + 1 shared, separate softmaxes, shared weight exactly 1
    RoutingSpec(num_experts=16, top_k=8, num_shared=1),
    # two shared experts (ordered by their own softmax) and routed renormalisation only
    RoutingSpec(num_experts=16, top_k=8, num_shared=2, norm_topk_prob=True),
    # shared path where k == s: no routed pick at all
    RoutingSpec(num_experts=3, top_k=1, num_shared=1),
    # always-active ids (given out of order) masked from the pick, weighted by the full softmax
    RoutingSpec(num_experts=12, top_k=5, always_active=(7, 2)),
    # always-active with renormalisation over all k
    RoutingSpec(num_experts=12, top_k=5, always_active=(7, 2), norm_topk_prob=True),
    # always-active set that fills k: no routed pick
    RoutingSpec(num_experts=16, top_k=2, always_active=(15, 0)),
]


def spec_id(s: RoutingSpec) -> str:
    return f"E{s.num_experts}k{s.top_k}s{s.num_shared}aa{len(s.always_active)}n{int(s.norm_topk_prob)}"


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
@pytest.mark.parametrize("tokens", [1, 33, 80])  # one token, odd count, more than one 16-token block
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])  # bf16 logits: math still fp32
def test_routing_kernel_matches_reference(spec: RoutingSpec, tokens: int, dtype: torch.dtype) -> None:
    logits = tie_free_logits(tokens, spec.num_experts, seed=tokens).to(dtype)
    want_w, want_ids = route(logits, spec)
    got_w, got_ids = runtime_route(logits, spec, backend="triton")
    assert got_ids.dtype == torch.int64 and got_w.dtype == torch.float32
    torch.testing.assert_close(got_ids, want_ids, rtol=0, atol=0)
    torch.testing.assert_close(got_w, want_w, rtol=1e-5, atol=1e-6)


def test_auto_backend_uses_torch_on_cpu() -> None:
    # CPU tensors: "auto" is the torch reference itself (same objects' values, no kernel launch)
    spec = RoutingSpec(num_experts=12, top_k=4, num_shared=1)
    logits = tie_free_logits(5, 12)
    for got, want in zip(runtime_route(logits, spec), route(logits, spec), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_unknown_backend_is_refused() -> None:
    # a typo names the valid choices instead of silently falling back
    with pytest.raises(RuntimeSetupError, match="auto, triton, torch"):
        runtime_route(tie_free_logits(2, 4), RoutingSpec(num_experts=4, top_k=2), backend="cuda")
