"""Per-domain expert usage: the profile file, the statistics collectors and the runners.

Profile / DomainStats / EXPERT_STATS / pool_size     the file format (store.py), the contract with selection
profile_model(model_dir, documents, settings)        one pass over the calibration set -> Profile (runner.py)
profile_to_file(model_dir, sources, out, ...)        load sources, profile, write atomically (rank 0)
merge_profile_files(paths, out)                      profile files of one model summed into one file (merge.py)
coverage(profile, domain, kept_ids_per_layer)        routed probability mass kept per layer (report.py)
TopkSample (topk_sample.py)                          a bounded, mergeable sample of tokens' top-k sets
"""

from emo_prune.common.lazy import exports_of, lazy_exports

_EXPORTS = exports_of(
    {
        "emo_prune.profile.merge": ["merge_profile_files"],
        "emo_prune.profile.report": ["build_report", "coverage", "subset"],
        "emo_prune.profile.runner": ["ProfileSettings", "profile_model", "profile_to_file"],
        "emo_prune.profile.store": ["EXPERT_STATS", "POOL_BUDGETS", "DomainStats", "Profile", "pool_size"],
    }
)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
