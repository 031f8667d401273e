"""Per-domain expert usage: the profile file, the statistics collectors and the runners."""

from emo_prune.profile.store import EXPERT_STATS, POOL_BUDGETS, DomainStats, Profile, pool_size

__all__ = ["EXPERT_STATS", "POOL_BUDGETS", "DomainStats", "Profile", "pool_size"]
