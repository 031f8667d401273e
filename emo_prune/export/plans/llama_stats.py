"""llama.cpp's expert_stats.json (PR #20454: `llama-expert-profile` writes it, `gguf_prune.py --stats` reads it).

    {"<layer>": {"total_tokens": T, "activation_counts": [E], "activation_frequency": [E],
                 "avg_gate_weight": [E], "ean_mean": [E], "reap": [E], "never_activated": [ids]}, ...}

One object per MoE layer, keyed by the layer index. Written from a profile, the named domains summed:
  total_tokens          the domains' non-padding tokens
  activation_counts     tokens routed to the expert (top-k picks)
  activation_frequency  activation_counts / total_tokens
  avg_gate_weight       mean routing weight over the tokens routed to the expert
  ean_mean              mean ||expert output|| over those tokens (REAP's EAN)
  reap                  mean routing weight x ||expert output|| over those tokens (REAP saliency)
  never_activated       experts with activation_counts 0
Means are 0 for an expert never routed. Imported, a layer is ranked by `reap` (what gguf_prune.py
prunes by), ties towards the lower id; `--keep` decides how many are kept.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from emo_prune.arch import LayerLayout
from emo_prune.errors import PlanError
from emo_prune.export.plans.files import LayerRankings, as_int, layer_of, numbers
from emo_prune.export.plans.registry import Imported
from emo_prune.profile.store import Profile

PER_EXPERT = ("activation_counts", "activation_frequency", "avg_gate_weight", "ean_mean", "reap")


def write(profile: Profile, domains: list[str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    total = sum(profile.require_domain(d).num_tokens for d in domains)
    for lay in profile.layouts:
        if lay.is_dense:
            continue

        def summed(stat: str, layer: int = lay.index) -> np.ndarray:
            return sum(profile.stat(d, stat, layer) for d in domains)  # [E] float64

        counts = summed("tokens")
        routed = np.maximum(counts, 1)
        result[str(lay.index)] = {
            "total_tokens": int(total),
            "activation_counts": [int(c) for c in counts],
            "activation_frequency": (counts / max(total, 1)).tolist(),
            "avg_gate_weight": (summed("gate_weight") / routed).tolist(),
            "ean_mean": (summed("ean") / routed).tolist(),
            "reap": (summed("reap") / routed).tolist(),
            "never_activated": [int(e) for e in np.flatnonzero(counts == 0)],
        }
    return result


def read(data: Any, layouts: list[LayerLayout], where: str) -> Imported:
    if not isinstance(data, dict) or not data:
        raise PlanError(f"{where} is not an expert_stats.json (an object with one entry per MoE layer)")
    rankings = LayerRankings(layouts, where)
    for key, entry in data.items():
        at = f"{where}: layer {key!r}"
        lay = layer_of(key, layouts, at)
        if not isinstance(entry, dict):
            raise PlanError(f"{at} must be an object with {', '.join(PER_EXPERT)}")
        if "reap" not in entry:
            raise PlanError(f"{at} has no 'reap' (the saliency expert_stats.json ranks by)")
        as_int(entry.get("total_tokens", 0), f"{at} total_tokens")
        reap = numbers(entry["reap"], lay, f"{at} reap")
        for field in PER_EXPERT:
            if field in entry and field != "reap":
                numbers(entry[field], lay, f"{at} {field}")
        rankings.rank(lay, reap, at)
    return Imported(rankings=rankings.complete())
