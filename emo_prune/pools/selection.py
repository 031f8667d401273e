"""Which experts a request's pool holds at one MoE layer: the top-P routed experts by summed router mass.

Shapes: T tokens, E experts in the layer (shared / always-active included), E_r routed.

The mass is the router's own probabilities (`emo_prune.routing.router_probabilities`: the routed block
softmaxed on its own for the shared path) summed over the request's CONTEXT tokens, EMO's training rule
(docs/emo-checkpoint.md, "EMO training objective": s_d = sum of p over the document). Fixed experts
(shared tail, always-active) are in every pool. P counts the fixed experts, as `--keep` does
(`emo_prune.select.keep`): `--pool 0.125` of 32 experts = 4 = 3 routed + the shared one.
"""

from __future__ import annotations

import torch

from emo_prune.arch import LayerLayout
from emo_prune.errors import PlanError
from emo_prune.routing import router_probabilities
from emo_prune.select.keep import Keep, keep_counts


def pool_sizes(pool: str | float | int, layouts: list[LayerLayout]) -> list[int | None]:
    """Experts per layer (fixed ones included) for `--pool P`; None for dense layers. Same rules as --keep."""
    try:
        return keep_counts(Keep.parse(pool), layouts)
    except PlanError as exc:
        raise PlanError(str(exc).replace("--keep", "--pool").replace("keep ", "pool ", 1)) from None


def context_mass(logits: torch.Tensor, layout: LayerLayout) -> torch.Tensor:
    """Summed router probabilities of `logits` [T, E] (one request's tokens): [E] float64."""
    return router_probabilities(logits, layout.routing_spec()).sum(dim=0, dtype=torch.float64)


def choose_pool(mass: torch.Tensor, layout: LayerLayout, size: int) -> tuple[int, ...]:
    """Sorted expert ids: the fixed experts and the top-(size - fixed) routed experts by `mass` [E].

    Ties go to the lower id (a stable sort), so the same mass always gives the same pool.
    """
    fixed = layout.fixed_ids
    routed = torch.tensor(layout.routed_ids, dtype=torch.long)
    take = size - len(fixed)
    if take < layout.routing_spec().routed_top_k:
        raise PlanError(f"layer {layout.index}: a pool of {size} leaves fewer routed experts than top-k picks")
    order = torch.sort(mass.cpu()[routed], descending=True, stable=True).indices[:take]
    return tuple(sorted([*fixed, *routed[order].tolist()]))
