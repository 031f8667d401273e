"""vLLM-Ascend's expert_list_file: JSONL, one line per MoE layer, the layer's FULL ranking best first.

    {"0": [106, 65, 113, ...every expert of layer 0...]}
    {"1": [86, 48, 18, ...]}

Used with `additional_config = {"expert_list_file": FILE, "expert_prune_ratio": r}`, r in [0, 1): every
layer keeps its first round(E * (1 - r)) experts, and the loader refuses fewer than
num_experts_per_tok. One ratio for all layers, so one count: a model whose MoE layers have different
expert counts cannot be expressed. A plan holds only kept sets, not a ranking: this file is written
from a profile (the fixed shared / always-active experts first, then the method's ranking).
"""

from __future__ import annotations

import json

from emo_prune.arch import LayerLayout
from emo_prune.errors import PlanError
from emo_prune.export.plans.files import expert_ids, layer_of, parse_json
from emo_prune.export.plans.registry import Imported

RULE = "vLLM-Ascend applies one expert_prune_ratio to every layer (PR #12525)"


def write(rankings: list[list[int] | None], layouts: list[LayerLayout]) -> str:
    """rankings: per layer the routed experts best first; the fixed experts go in front (always kept)."""
    lines = []
    for lay, ranking in zip(layouts, rankings):
        if ranking is not None:
            lines.append(json.dumps({str(lay.index): [*lay.fixed_ids, *ranking]}))
    return "\n".join(lines) + "\n"


def prune_ratio(layouts: list[LayerLayout], kept_count: int) -> float:
    """expert_prune_ratio that keeps `kept_count` experts per layer; refuses what one ratio cannot say."""
    sizes = sorted({lay.num_experts for lay in layouts if not lay.is_dense})
    if len(sizes) != 1:
        raise PlanError(f"this model's MoE layers have {sizes} experts, so one ratio keeps different counts: {RULE}")
    top_k = max(lay.top_k for lay in layouts if not lay.is_dense)
    if kept_count < top_k:
        raise PlanError(f"keeping {kept_count} experts is fewer than top-k {top_k}; vLLM-Ascend's loader refuses it")
    return 1.0 - kept_count / sizes[0]


def read(text: str, layouts: list[LayerLayout], where: str) -> Imported:
    rankings: list[list[int] | None] = [None] * len(layouts)
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        at = f"{where} line {n}"
        entry = parse_json(line, at)
        if not isinstance(entry, dict) or len(entry) != 1:
            raise PlanError(f'{at} must be one object with one key, the layer id: {{"0": [ids...]}}')
        ((key, values),) = entry.items()
        lay = layer_of(key, layouts, at)
        if rankings[lay.index] is not None:
            raise PlanError(f"{at}: layer {lay.index} is listed twice")
        ranking = expert_ids(values, lay, at)
        if len(ranking) != lay.num_experts:
            raise PlanError(f"{at}: layer {lay.index} ranks {len(ranking)} experts; the format lists all {lay.num_experts}")
        rankings[lay.index] = ranking
    missing = [lay.index for lay, r in zip(layouts, rankings) if r is None and not lay.is_dense]
    if missing:
        raise PlanError(f"{where} has no line for MoE layer {missing[0]}")
    return Imported(rankings=rankings)
