"""What a profile says, as data: subsets, the routed mass they keep, top experts, overlap of domains.

`coverage` is the function selection reuses: for kept expert ids per layer, the share of the domain's
ROUTED probability mass they hold. Fixed experts (shared / always-active) are always kept, so they are
left out of both the numerator and the denominator; dense layers give None.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np

from emo_prune.profile.store import Profile, pool_size

FRACTIONS = (0.25, 0.125)


def routed_mass(profile: Profile, domain: str, layer: int) -> np.ndarray:
    """Probability mass of each routed expert of `layer` (fixed experts zeroed): [E_l] float64."""
    mass = profile.stat(domain, "prob_mass", layer).copy()
    mass[list(profile.layouts[layer].fixed_ids)] = 0.0
    return mass


def subset(profile: Profile, domain: str, fraction: float) -> list[list[int] | None]:
    """Per layer, the experts a `fraction` budget keeps by mass: top routed ids (ascending) + fixed ids."""
    kept: list[list[int] | None] = []
    for lay in profile.layouts:
        if lay.is_dense:
            kept.append(None)
            continue
        mass = routed_mass(profile, domain, lay.index)
        routed = np.array(lay.routed_ids, dtype=np.int64)
        top = routed[_in_pool(mass[routed], pool_size(lay, fraction))]
        kept.append(sorted(top.tolist()) + list(lay.fixed_ids))
    return kept


def coverage(profile: Profile, domain: str, kept_ids_per_layer: list[list[int] | None]) -> list[float | None]:
    """Share of the domain's routed probability mass that `kept_ids_per_layer` keeps, per layer."""
    if len(kept_ids_per_layer) != profile.num_layers:
        raise ValueError(f"need one id list per layer ({profile.num_layers}), got {len(kept_ids_per_layer)}")
    result: list[float | None] = []
    for lay, kept in zip(profile.layouts, kept_ids_per_layer, strict=True):
        if lay.is_dense or kept is None:
            result.append(None)
            continue
        mass = routed_mass(profile, domain, lay.index)
        total = float(mass.sum())
        result.append(float(mass[list(kept)].sum()) / total if total > 0 else None)
    return result


def top_experts(profile: Profile, domain: str, layer: int, n: int) -> list[tuple[int, float]]:
    """The n experts with the highest mean router probability (fixed experts included): [(id, mean p)]."""
    mean = profile.mean_probability(domain, layer)
    order = _descending(mean)[:n]
    return [(int(e), float(mean[e])) for e in order]


def _in_pool(mass: np.ndarray, size: int) -> np.ndarray:
    """[E_r] bool: EMO's pool rule (`emo_prune.routing.top_pool`) on a profile's numpy mass."""
    import torch

    from emo_prune.routing import top_pool

    return top_pool(torch.from_numpy(mass), size).numpy()


def _descending(values: np.ndarray) -> np.ndarray:
    """Indices that sort `values` from largest to smallest, ties in index order."""
    return np.argsort(-values, kind="stable")


def jaccard(a: list[int], b: list[int]) -> float:
    union = set(a) | set(b)
    return len(set(a) & set(b)) / len(union) if union else 1.0


def _summary(values: list[float | None]) -> dict[str, float | None]:
    real = [v for v in values if v is not None]
    return {"min": min(real) if real else None, "mean": sum(real) / len(real) if real else None}


def build_report(profile: Profile, top: int = 5, fractions: tuple[float, ...] = FRACTIONS) -> dict[str, Any]:
    """Everything `profile` / `profile show` print, JSON-ready."""
    domains: dict[str, Any] = {}
    subsets = {d: {f: subset(profile, d, f) for f in fractions} for d in sorted(profile.domains)}
    for name in sorted(profile.domains):
        stats = profile.domains[name]
        per_fraction = {}
        for f in fractions:
            cov = coverage(profile, name, subsets[name][f])
            per_fraction[str(f)] = {"per_layer": cov, **_summary(cov), "kept": subsets[name][f]}
        domains[name] = {
            "tokens": stats.num_tokens,
            "documents": stats.num_documents,
            "coverage": per_fraction,
            "top_experts": [None if lay.is_dense else top_experts(profile, name, lay.index, top) for lay in profile.layouts],
            "entropy": [
                None if lay.is_dense else float(stats.entropy[lay.index]) / max(stats.num_tokens, 1) for lay in profile.layouts
            ],
        }
    overlap = []
    first = fractions[0]
    for a, b in combinations(sorted(profile.domains), 2):
        per_layer = [
            None
            if lay.is_dense
            else jaccard(_routed(subsets[a][first][lay.index], lay), _routed(subsets[b][first][lay.index], lay))
            for lay in profile.layouts
        ]
        overlap.append({"domains": [a, b], "fraction": first, "jaccard": per_layer, **_summary(per_layer)})
    return {
        "model": profile.model.get("path"),
        "layers": profile.num_layers,
        "pool_sizes": profile.pool_sizes(),
        "domains": domains,
        "overlap": overlap,
    }


def _routed(ids: list[int] | None, lay) -> list[int]:
    """Overlap compares the routed picks only: fixed experts are in every subset."""
    fixed = set(lay.fixed_ids)
    return [e for e in ids or [] if e not in fixed]
