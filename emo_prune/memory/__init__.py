"""Memory planning: estimate a command's peak from headers, choose the whole-model or layerwise path."""

from emo_prune.common.lazy import exports_of, lazy_exports

_EXPORTS = exports_of(
    {
        "emo_prune.memory.estimate": ["Estimate", "Workload", "estimates"],
        "emo_prune.memory.plan": ["ENV", "PATHS", "Budget", "Choice", "MemoryOptions", "available", "choose_path", "plan_memory"],
    }
)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
