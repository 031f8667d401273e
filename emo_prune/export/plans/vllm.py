"""vLLM's pruned-experts profile: the experts NOT to load, as [layer, expert] pairs of original ids.

    {"version": 1, "model": "...", "workload": "...", "pruned_experts": [[0, 5], [0, 17], [1, 2], ...]}

#42613 (`--moe-pruned-experts-profile`) reads `version` and `pruned_experts`; #37824
(`--riy-expert-profile`) also records `model` and `workload` and rejects a profile that leaves a
layer fewer than top-k experts. Counts may differ per layer (each layer's expert map is its own).
Lossless for a plan's kept sets: kept = every expert of the layer minus the pruned ones.
"""

from __future__ import annotations

from typing import Any

from emo_prune.arch import LayerLayout
from emo_prune.errors import PlanError
from emo_prune.export.plans.files import as_int, layer_of
from emo_prune.export.plans.registry import Imported

VERSION = 1
RULE = "vLLM's profile loader (PR #37824) rejects a layer left with fewer than top-k experts"


def write(kept: list[list[int] | None], layouts: list[LayerLayout], model: str, workload: str) -> dict[str, Any]:
    for lay, ids in zip(layouts, kept):
        if ids is not None and len(ids) < lay.top_k:
            raise PlanError(f"layer {lay.index} keeps {len(ids)} experts, fewer than its top-k {lay.top_k}: {RULE}")
    pruned = [
        [lay.index, e] for lay, ids in zip(layouts, kept) if ids is not None for e in range(lay.num_experts) if e not in set(ids)
    ]
    return {"version": VERSION, "model": model, "workload": workload, "pruned_experts": pruned}


def read(data: Any, layouts: list[LayerLayout], where: str) -> Imported:
    if not isinstance(data, dict) or "pruned_experts" not in data:
        raise PlanError(f"{where} is not a vLLM pruned-experts profile (no 'pruned_experts')")
    if data.get("version") != VERSION:
        raise PlanError(f"{where}: 'version' is {data.get('version')!r}; this emo-prune reads version {VERSION}")
    pairs = data["pruned_experts"]
    if not isinstance(pairs, list):
        raise PlanError(f"{where}: 'pruned_experts' must be a list of [layer, expert] pairs")
    pruned: dict[int, set[int]] = {}
    for n, pair in enumerate(pairs):
        at = f"{where}: pruned_experts[{n}]"
        if not isinstance(pair, list) or len(pair) != 2:
            raise PlanError(f"{at} must be a [layer, expert] pair")
        lay = layer_of(pair[0], layouts, at)
        expert = as_int(pair[1], at)
        if not 0 <= expert < lay.num_experts:
            raise PlanError(f"{at}: expert {expert} is out of range 0..{lay.num_experts - 1} of layer {lay.index}")
        if expert in pruned.setdefault(lay.index, set()):
            raise PlanError(f"{at}: [{lay.index}, {expert}] is listed twice")
        pruned[lay.index].add(expert)
    kept: list[list[int] | None] = []
    for lay in layouts:
        if lay.is_dense:
            kept.append(None)
            continue
        ids = [e for e in range(lay.num_experts) if e not in pruned.get(lay.index, set())]
        if len(ids) < lay.top_k:
            raise PlanError(f"{where}: layer {lay.index} keeps {len(ids)} experts, fewer than its top-k {lay.top_k}: {RULE}")
        kept.append(ids)
    return Imported(kept=kept)
