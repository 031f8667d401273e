"""Serving: per-request expert pools. Each request runs within the top-P experts its context routes to,
per MoE layer, with the experts read from the checkpoint on demand into a byte-budgeted shared cache.

  settings.py     PoolSettings: the per-request pool options, declared once
  selection.py    the pool of a layer from the context's summed router mass (and `--pool` sizes)
  store.py        ExpertStore: experts read from the safetensors files on demand, LRU / LFU cache
  runtime.py      pool mode of the native EMO model: prefill chooses the pools layer by layer
  index_file.py   the pool index and its file: pools from where the nearest calibration requests routed
  index_build.py  building a pool index (`emo-prune pool-index`)
  generate.py     `emo-prune generate`: streamed greedy generation, in pools or whole

Elsewhere, below or above: the lm-eval model in pool mode is `emo_prune.eval.pool_lm`, the coverage guard
of static builds `emo_prune.extract.coverage_meter`, the context -> answer pairs `emo_prune.calib.pairs`.
Nothing here imports `emo_prune.eval` (tests/test_import_layers.py).
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "ExpertStore": "store",
    "ExpertWeights": "store",
    "StoreStats": "store",
    "PoolIndex": "index_file",
    "build_index": "index_build",
    "Generator": "generate",
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
    return getattr(import_module(f"emo_prune.serve.{_EXPORTS[name]}"), name)
