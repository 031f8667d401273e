"""Routed-mass coverage: the share of a domain's routed router probability that the kept experts hold."""

from __future__ import annotations

from emo_prune.profile.store import Profile
from emo_prune.select.plan import Kept


def coverage(profile: Profile, domain: str, kept: Kept) -> list[float | None]:
    """Per layer: sum of the profile's prob_mass over kept routed experts / over all routed experts.

    Fixed experts (shared / always-active) are left out of both sums: they are kept by construction.
    None for a dense layer or a layer the domain never reached.
    """
    result: list[float | None] = []
    for layout, ids in zip(profile.layouts, kept):
        if layout.is_dense or ids is None:
            result.append(None)
            continue
        mass = profile.stat(domain, "prob_mass", layout.index)  # [E_l]
        routed = list(layout.routed_ids)
        total = float(mass[routed].sum())
        kept_routed = [e for e in ids if e in set(routed)]
        result.append(float(mass[kept_routed].sum()) / total if total > 0 else None)
    return result
