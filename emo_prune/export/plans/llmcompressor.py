"""llm-compressor's REAP saliency report (REAPPruningModifier; import only).

The modifier tracks, per MoE layer, each expert's mean saliency (routing weight x ||expert output||
over its routed tokens), its token count and its top-k weights, and drops the lowest-saliency
experts. Its report is read as one entry per MoE layer, keyed by the layer index or by the module
name that contains it (`model.layers.3.mlp`), or as a list in layer order:
    {"model.layers.0.mlp": {"saliency": [E], "count": [E], "topk_weights": [E]}, ...}
A layer is ranked by `saliency`, ties towards the lower id; `--keep` decides how many are kept.
`ExpertPruner`'s `quantization_config.layer_overrides` records only COUNTS per layer, not which
experts, so it cannot be imported (nothing ranks the experts).
"""

from __future__ import annotations

import re
from typing import Any

from emo_prune.arch import LayerLayout
from emo_prune.errors import PlanError
from emo_prune.export.plans.files import LayerRankings, layer_of, numbers
from emo_prune.export.plans.registry import Imported

LAYER_IN_NAME = re.compile(r"(?:^|\.)layers\.(\d{1,6})(?:\.|$)")


def _layer_key(key: str) -> Any:
    found = LAYER_IN_NAME.search(key)
    return found.group(1) if found else key


def read(data: Any, layouts: list[LayerLayout], where: str) -> Imported:
    if isinstance(data, dict) and isinstance(data.get("layers"), (dict, list)):
        data = data["layers"]
    if isinstance(data, list):
        data = {str(i): entry for i, entry in enumerate(data) if entry is not None}
    if not isinstance(data, dict) or not data:
        raise PlanError(f"{where} is not a saliency report (one entry per MoE layer with 'saliency')")
    rankings = LayerRankings(layouts, where)
    for key, entry in data.items():
        at = f"{where}: layer {key!r}"
        lay = layer_of(_layer_key(key), layouts, at)
        if not isinstance(entry, dict) or "saliency" not in entry:
            raise PlanError(f"{at} has no 'saliency' list")
        saliency = numbers(entry["saliency"], lay, f"{at} saliency")
        if "count" in entry:
            numbers(entry["count"], lay, f"{at} count")
        rankings.rank(lay, saliency, at)
    return Imported(rankings=rankings.complete())
