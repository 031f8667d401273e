"""The pruned model's config.json: the source config dict with only expert-count and expert-index fields changed.

Edits the JSON dict, never a transformers config object, so every other field stays exactly as it was
(AI2's 4.57-era config class must still read the result). Changed, where the family has them:
  num_experts / num_local_experts   the largest kept count (= K for a uniform plan)
  num_experts_per_layer (EMO)       one kept count per layer (0 for dense layers), written when counts
                                    differ across layers or the source already had the list
  num_experts_per_tok               min(original, largest kept count): what is reachable. A plan keeps
                                    at least each layer's top-k min(top_k, E_l), so no layer's
                                    effective top-k changes
  always_active_experts(_per_layer) remapped to the new ids (the fixed experts are now the last ids);
                                    a global list that no longer holds for every layer becomes per-layer
  dtype / torch_dtype               only when --dtype converts the weights
Shared-expert counts need no change: shared experts are always kept, and stay the last ids.
"""

from __future__ import annotations

import copy
from typing import Any

from emo_prune.arch import MoEArchitecture
from emo_prune.arch.layout import first_present
from emo_prune.select.plan import Kept

DTYPE_NAMES = {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}


def remap_config(
    config: dict[str, Any], arch: MoEArchitecture, kept: Kept, out_dtype: str | None = None
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(new config dict, {field: {"from": old, "to": new}} for every changed field)."""
    family = arch.family
    new = copy.deepcopy(config)
    moe = [(lay, ids) for lay, ids in zip(arch.layouts, kept) if not lay.is_dense and ids is not None]
    counts = [len(ids) for _, ids in moe]

    found = first_present(config, family.num_experts_keys)
    assert found is not None  # the architecture was resolved from this config
    new[found[0]] = max(counts)

    if family.per_layer_counts is not None:
        key = family.per_layer_counts["key"]
        if len(set(counts)) > 1 or config.get(key) is not None:
            new[key] = [0 if ids is None else len(ids) for ids in kept]

    top_k_key = family.config_keys["top_k"]
    new[top_k_key] = min(int(config[top_k_key]), max(counts))

    if family.always_active is not None:
        _remap_always_active(config, new, arch, kept, family.always_active)

    if out_dtype is not None:
        for key in ("dtype", "torch_dtype"):
            if key in new and new[key] is not None:
                new[key] = DTYPE_NAMES[out_dtype]

    changes = {k: {"from": config.get(k), "to": v} for k, v in new.items() if config.get(k) != v}
    return new, changes


def _remap_always_active(
    config: dict[str, Any], new: dict[str, Any], arch: MoEArchitecture, kept: Kept, keys: dict[str, str]
) -> None:
    per_layer_key, global_key = keys.get("per_layer_key"), keys.get("key")
    remapped: list[list[int] | None] = []
    for layout, ids in zip(arch.layouts, kept):
        if ids is None or not layout.always_active:
            remapped.append(None)
            continue
        position = {old: new_id for new_id, old in enumerate(ids)}
        remapped.append([position[e] for e in layout.always_active])
    if not any(remapped):
        return
    if per_layer_key and config.get(per_layer_key) is not None:
        source = config[per_layer_key]
        new[per_layer_key] = [ids if ids is not None else source[i] for i, ids in enumerate(remapped)]
        return
    distinct = {tuple(ids) for ids in remapped if ids is not None}
    if len(distinct) == 1 and global_key:
        new[global_key] = list(next(iter(distinct)))
    elif per_layer_key:
        new[per_layer_key] = remapped
        if global_key:
            new[global_key] = None
