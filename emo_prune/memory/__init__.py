"""Memory planning: estimate a command's peak from headers, choose the whole-model or layerwise path."""

from emo_prune.memory.estimate import Estimate, Workload, estimates
from emo_prune.memory.plan import ENV, PATHS, Budget, Choice, MemoryOptions, available, choose_path, plan_memory

__all__ = [
    "ENV",
    "PATHS",
    "Budget",
    "Choice",
    "Estimate",
    "MemoryOptions",
    "Workload",
    "available",
    "choose_path",
    "estimates",
    "plan_memory",
]
