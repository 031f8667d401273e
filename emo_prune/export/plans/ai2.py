"""AI2's pruning_metadata.json: `experts_kept_per_layer`, one list of original ids per layer (null for
dense layers), plus how the selection was made. `extract` already writes it into every build
(`emo_prune.extract.card.ai2_metadata`, the one definition of its keys) and every command reads it as
a plan (`emo_prune.select.plan.Plan.from_dict`); this module only routes both through `plan export /
import`. Lossless for the kept sets.
"""

from __future__ import annotations

from typing import Any

from emo_prune.arch import LayerLayout, MoEArchitecture
from emo_prune.export.plans.registry import Imported
from emo_prune.extract.card import ai2_metadata
from emo_prune.select.plan import Plan


def write(plan: Plan, kept: list[list[int] | None], arch: MoEArchitecture) -> dict[str, Any]:
    return ai2_metadata(plan, kept, arch)


def read(data: Any, layouts: list[LayerLayout], where: str) -> Imported:
    return Imported(kept=Plan.from_dict(data, where=where).experts_kept_per_layer)
