"""Which experts a request's pool holds at one MoE layer: the top-P routed experts by summed router mass.

Shapes: T tokens, E experts in the layer (shared / always-active included), E_r routed.

The mass is the router's own probabilities (`emo_prune.routing.router_probabilities`: the routed block
softmaxed on its own for the shared path) summed over the request's CONTEXT tokens, EMO's training rule
(docs/emo-checkpoint.md, "EMO training objective": s_d = sum of p over the document). With `power`
a > 1 the pool is chosen by sum of p^a instead: tokens that commit to an expert count more than tokens
spread thin over many. Measured on the bundled EMO's calibration-split context -> answer pairs (not
the eval set; examples/experiments/pool_tuning.py): a = 2 with two drafts raises math from 0.89 to 0.99 of the
full model at 25% and from 0.79 to 0.87 at 12.5%, code and prose within 0.01 (a = 3: 0.96 and 0.88);
`examples/experiments/pool_benchmark.py` reports the held-out numbers. Fixed experts (shared tail, always-active)
are in every pool. P counts the fixed experts, as `--keep` does (`emo_prune.select.keep`): `--pool
0.125` of 64 experts = 8 = 7 routed + the shared one.
"""

from __future__ import annotations

import torch

from emo_prune.arch import LayerLayout
from emo_prune.errors import PlanError
from emo_prune.routing import router_probabilities, top_pool
from emo_prune.select.keep import Keep, keep_counts


def pool_sizes(pool: str | float | int, layouts: list[LayerLayout]) -> list[int | None]:
    """Experts per layer (fixed ones included) for `--pool P`; None for dense layers. Same rules as --keep."""
    try:
        return keep_counts(Keep.parse(pool), layouts)
    except PlanError as exc:
        raise PlanError(str(exc).replace("--keep", "--pool").replace("keep ", "pool ", 1)) from None


def context_mass(logits: torch.Tensor, layout: LayerLayout, power: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Over the tokens of `logits` [T, E] (one request's): the summed router probabilities (what reports
    show) and the summed probabilities to `power` (what pools are chosen by), [E] float64 each, from one
    softmax; the same tensor twice when power is 1."""
    probabilities = router_probabilities(logits, layout.routing_spec()).double()  # [T, E]
    plain = probabilities.sum(dim=0)
    return plain, plain if power == 1 else probabilities.pow(power).sum(dim=0)


def choose_pool(mass: torch.Tensor, layout: LayerLayout, size: int) -> tuple[int, ...]:
    """Sorted expert ids: the fixed experts and the top-(size - fixed) routed experts by `mass` [E].

    EMO's pool rule (`emo_prune.routing.top_pool`: ties go to the lower id) on the routed block.
    """
    fixed = layout.fixed_ids
    routed = torch.tensor(layout.routed_ids, dtype=torch.long)
    take = size - len(fixed)
    if take < layout.routing_spec().routed_top_k:
        raise PlanError(f"layer {layout.index}: a pool of {size} leaves fewer routed experts than top-k picks")
    return tuple(sorted([*fixed, *routed[top_pool(mass.cpu()[routed], take)].tolist()]))
