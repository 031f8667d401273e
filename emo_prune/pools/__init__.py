"""Per-request expert pools: each request runs within the top-P experts its context routes to, per
MoE layer, with the experts read from the checkpoint on demand into a byte-budgeted shared cache.

  selection.py  the pool of a layer from the context's summed router mass (and `--pool` sizes)
  store.py      ExpertStore: experts read from the safetensors files on demand, LRU / LFU cache
  runtime.py    pool mode of the native EMO model: prefill chooses the pools layer by layer
  coverage.py   coverage guard of static builds: share of the full router's mass on kept experts
  lm.py         lm-eval model type evaluating every request within its own pool
"""

from emo_prune.pools.runtime import PoolRuntime, PoolSettings, RequestReport, load_pool_runtime
from emo_prune.pools.selection import choose_pool, context_mass, pool_sizes
from emo_prune.pools.store import ExpertStore, ExpertWeights, StoreStats

__all__ = [
    "ExpertStore",
    "ExpertWeights",
    "PoolRuntime",
    "PoolSettings",
    "RequestReport",
    "StoreStats",
    "choose_pool",
    "context_mass",
    "load_pool_runtime",
    "pool_sizes",
]
