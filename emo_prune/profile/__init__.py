"""Per-domain expert usage: the profile file, the statistics collectors and the runners.

  Profile / DomainStats / EXPERT_STATS / pool_size     the file format (store.py), the contract with selection
  profile_model(model_dir, documents, settings)        one pass over the calibration set -> Profile (runner.py)
  profile_to_file(model_dir, sources, out, ...)        load sources, profile, write atomically (rank 0)
  coverage(profile, domain, kept_ids_per_layer)        routed probability mass kept per layer (report.py)
"""

from emo_prune.profile.report import build_report, coverage, subset
from emo_prune.profile.runner import ProfileSettings, profile_model, profile_to_file
from emo_prune.profile.store import EXPERT_STATS, POOL_BUDGETS, DomainStats, Profile, pool_size

__all__ = [
    "EXPERT_STATS",
    "POOL_BUDGETS",
    "DomainStats",
    "Profile",
    "ProfileSettings",
    "build_report",
    "coverage",
    "pool_size",
    "profile_model",
    "profile_to_file",
    "subset",
]
