"""Run a loaded model as if experts were dropped: their router logits are -inf before any routing math.

This is the definition a pruned checkpoint must match (softmax renormalizes over the survivors), and
what AI2's greedy selection runs on. Every supported family's router (transformers 5 `layer.mlp.gate`,
forward(hidden [T, H]) -> (logits [T, E], weights [T, k], ids [T, k])) is a linear map followed by
routing that `emo_prune.routing.route` reproduces from the layer's `RoutingSpec`: softmax over all E
then top-k, renormalized for Mixtral (always) and OLMoE / Qwen (norm_topk_prob), EMO's shared tail
and always-active experts. So the masked forward is: logits = x W^T, dropped columns := -inf, route.
Ids keep the ORIGINAL numbering, so the model's own experts module runs unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from emo_prune.arch import MoEArchitecture
from emo_prune.routing import RoutingSpec, route
from emo_prune.select.plan import Kept


def router_module(model: nn.Module, arch: MoEArchitecture, layer: int) -> nn.Module:
    """The router of decoder layer `layer` of a transformers CausalLM model."""
    return model.get_submodule(arch.family.prefix(layer) + arch.family.router.module)


def _masked_forward(gate: nn.Module, spec: RoutingSpec, dropped: torch.Tensor):  # noqa: ANN202
    weight = cast(torch.Tensor, gate.weight)  # [E, H]

    def forward(hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = hidden_states.reshape(-1, weight.shape[1])  # [T, H]
        logits = F.linear(x, weight)  # [T, E]
        logits = logits.index_fill(1, dropped.to(logits.device), float("-inf"))
        weights, ids = route(logits, spec)  # [T, k] fp32, [T, k] original ids
        return logits, weights.to(logits.dtype), ids

    return forward


@contextmanager
def masked_experts(model: nn.Module, arch: MoEArchitecture, kept: Kept, layers: set[int] | None = None) -> Iterator[None]:
    """Within the block, each MoE layer (of `layers`, default all) routes only among `kept[layer]`."""
    patched: list[nn.Module] = []
    try:
        for layout, ids in zip(arch.layouts, kept):
            if layout.is_dense or ids is None or (layers is not None and layout.index not in layers):
                continue
            dropped = sorted(set(range(layout.num_experts)) - set(ids))
            if not dropped:
                continue
            gate = router_module(model, arch, layout.index)
            gate.forward = _masked_forward(gate, layout.routing_spec(), torch.tensor(dropped, dtype=torch.long))
            patched.append(gate)
        yield
    finally:
        for gate in patched:
            del gate.forward  # back to the class's forward
