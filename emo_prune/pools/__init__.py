"""Per-request expert pools: each request runs within the top-P experts its context routes to, per
MoE layer, with the experts read from the checkpoint on demand into a byte-budgeted shared cache.

  settings.py   PoolSettings: the per-request pool options, declared once
  selection.py  the pool of a layer from the context's summed router mass (and `--pool` sizes)
  store.py      ExpertStore: experts read from the safetensors files on demand, LRU / LFU cache
  runtime.py    pool mode of the native EMO model: prefill chooses the pools layer by layer
  index.py      pool index: pools from where the answers of the nearest calibration requests routed
  coverage.py   coverage guard of static builds: share of the full router's mass on kept experts
  generate.py   `emo-prune generate`: streamed greedy generation, in pools or whole
  lm.py         lm-eval model type evaluating every request within its own pools

Names are imported lazily: `extract` writes the coverage side file without loading transformers.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "ExpertStore": "store",
    "ExpertWeights": "store",
    "StoreStats": "store",
    "PoolIndex": "index",
    "build_index": "index",
    "PoolRuntime": "runtime",
    "PoolSettings": "settings",
    "RequestReport": "runtime",
    "load_pool_runtime": "runtime",
    "choose_pool": "selection",
    "context_mass": "selection",
    "pool_sizes": "selection",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"emo_prune.pools.{_EXPORTS[name]}"), name)
