"""Per-layer expert layout of a concrete model: the one place that reads expert counts from a config.

A config may be a config.json dict or a transformers config object. Every family resolves to the same
`LayerLayout` list, so profiling, selection, extraction and the native EMO model agree on what each
layer holds:
  E = experts in the layer (0 for a dense MLP layer), shared and always-active included;
  s = tail-shared experts (ids E-s .. E-1, EMO); AA = explicit always-active ids (EMO);
  k = experts active per token, min(config top-k, E).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from emo_prune.arch.family import FamilySpec
from emo_prune.errors import ConfigError
from emo_prune.routing import RoutingSpec


@dataclass(frozen=True)
class LayerLayout:
    index: int
    num_experts: int  # E; 0 = dense MLP layer
    num_shared: int = 0  # s, tail-shared experts
    always_active: tuple[int, ...] = ()
    top_k: int = 0  # k, 0 for a dense layer
    norm_topk_prob: bool = False

    @property
    def is_dense(self) -> bool:
        return self.num_experts == 0

    @property
    def fixed_ids(self) -> tuple[int, ...]:
        """Experts that every token uses and pruning always keeps (shared tail or always-active)."""
        if self.always_active:
            return tuple(sorted(self.always_active))
        return tuple(range(self.num_experts - self.num_shared, self.num_experts))

    @property
    def routed_ids(self) -> tuple[int, ...]:
        """Experts that compete for tokens."""
        fixed = set(self.fixed_ids)
        return tuple(e for e in range(self.num_experts) if e not in fixed)

    def experts_at(self, fraction: float) -> int:
        """The keep-count rounding rule, defined once: round(fraction x E), fixed experts included
        (selection's --keep and the profile's EMO pool budgets both use it)."""
        return round(fraction * self.num_experts)

    def routing_spec(self) -> RoutingSpec:
        if self.is_dense:
            raise ConfigError(f"layer {self.index} is a dense MLP layer: it has no router")
        return RoutingSpec(
            num_experts=self.num_experts,
            top_k=self.top_k,
            num_shared=0 if self.always_active else self.num_shared,
            always_active=self.always_active,
            norm_topk_prob=self.norm_topk_prob,
        )


def config_get(config: Mapping[str, Any] | Any, key: str | None, default: Any = None) -> Any:
    """Read a key from a config.json dict or an attribute from a transformers config."""
    if key is None:
        return default
    if isinstance(config, Mapping):
        value = config.get(key, default)
    else:
        value = getattr(config, key, default)
    return default if value is None else value


def first_present(config: Mapping[str, Any] | Any, keys: tuple[str, ...]) -> tuple[str, Any] | None:
    for key in keys:
        value = config_get(config, key)
        if value is not None:
            return key, value
    return None


def config_int(value: Any, key: str | None) -> int:
    """A non-negative integer read from a config (an untrusted file), or ConfigError naming the field."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"config field {key!r} must be a non-negative integer, got {value!r}"[:300])
    return value


def _per_layer_list(config: Any, key: str | None, num_layers: int, what: str) -> list | None:
    value = config_get(config, key)
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or len(value) != num_layers:
        raise ConfigError(f"config field {key!r} ({what}) must be a list of {num_layers} entries, one per layer; got {value!r}")
    return list(value)


def _id_list(value: Any, key: str | None) -> list | tuple:
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"config field {key!r} must list expert ids, got {value!r}"[:300])
    return value


def compute_layouts(family: FamilySpec, config: Mapping[str, Any] | Any) -> list[LayerLayout]:
    keys = family.config_keys
    num_layers = config_get(config, keys["num_layers"])
    if not isinstance(num_layers, int) or num_layers <= 0:
        raise ConfigError(f"config field {keys['num_layers']!r} must be a positive integer, got {num_layers!r}")
    found = first_present(config, family.num_experts_keys)
    if found is None:
        raise ConfigError(f"config has none of {list(family.num_experts_keys)} (expert count of a {family.name} model)")
    base_experts = config_int(found[1], found[0])
    top_k = config_get(config, keys["top_k"])
    if not isinstance(top_k, int) or top_k <= 0:
        raise ConfigError(f"config field {keys['top_k']!r} must be a positive integer, got {top_k!r}")
    norm = bool(config_get(config, keys.get("norm_topk_prob"), family.defaults.get("norm_topk_prob", False)))

    counts = [base_experts] * num_layers
    if family.per_layer_counts is not None:
        per_layer = _per_layer_list(config, family.per_layer_counts["key"], num_layers, "experts per layer")
        if per_layer is not None:
            counts = [config_int(c, family.per_layer_counts["key"]) for c in per_layer]
    dense = family.dense_layers
    if dense is not None and dense.kind == "sparse_step" and dense.mlp_only_key and dense.step_key:  # the spec requires both
        mlp_only = config_get(config, dense.mlp_only_key, family.defaults.get(dense.mlp_only_key, []))
        if not isinstance(mlp_only, (list, tuple)):
            raise ConfigError(f"config field {dense.mlp_only_key!r} must be a list of layer indices, got {mlp_only!r}")
        mlp_only = {config_int(i, dense.mlp_only_key) for i in mlp_only}
        step = config_int(config_get(config, dense.step_key, family.defaults.get(dense.step_key, 1)), dense.step_key)
        if step == 0:
            raise ConfigError(f"config field {dense.step_key!r} must be a positive integer, got 0")
        counts = [0 if (i in mlp_only or base_experts == 0 or (i + 1) % step != 0) else c for i, c in enumerate(counts)]
    if any(c < 0 for c in counts):
        raise ConfigError(f"negative expert count in {counts}")
    if dense is None and any(c == 0 for c in counts):
        raise ConfigError(f"{family.name} has no dense layers, but the config gives a layer 0 experts: {counts}")
    most = max(counts, default=0)
    if most and top_k > most:
        raise ConfigError(
            f"config field {keys['top_k']!r} is {top_k}, but no layer has more than {most} experts "
            f"({found[0]!r}{' / per-layer counts' if family.per_layer_counts else ''}); a token cannot be routed to more "
            f"experts than its layer holds: fix one of them"
        )

    shared = [0] * num_layers
    spec = family.shared_experts
    if spec is not None and spec.kind == "tail":
        per_layer = _per_layer_list(config, spec.per_layer_key, num_layers, "shared experts per layer")
        if per_layer is not None:
            shared = [config_int(s, spec.per_layer_key) for s in per_layer]
        else:
            base_shared = config_int(config_get(config, spec.count_key, 0), spec.count_key)
            shared = [min(base_shared, c) for c in counts]

    always: list[tuple[int, ...]] = [()] * num_layers
    if family.always_active is not None:
        per_layer = _per_layer_list(config, family.always_active.get("per_layer_key"), num_layers, "always-active ids per layer")
        if per_layer is not None:
            key = family.always_active.get("per_layer_key")
            always = [tuple(config_int(e, key) for e in _id_list(ids or (), key)) for ids in per_layer]
        else:
            key = family.always_active.get("key")
            ids = config_get(config, key)
            if ids:
                always = [tuple(config_int(e, key) for e in _id_list(ids, key)) if c else () for c in counts]

    layouts = []
    for i, count in enumerate(counts):
        if count == 0:
            layouts.append(LayerLayout(index=i, num_experts=0))
            continue
        layer_k = min(top_k, count)
        fixed = len(always[i]) if always[i] else shared[i]
        if shared[i] > count or fixed > layer_k:
            raise ConfigError(
                f"layer {i}: {fixed} always-on experts (shared or always-active) do not fit in top-k {layer_k} "
                f"of {count} experts; check num_shared_experts / always_active_experts"
            )
        bad = [e for e in always[i] if not 0 <= e < count]
        if bad or len(set(always[i])) != len(always[i]):
            raise ConfigError(f"layer {i}: always-active ids {list(always[i])} must be distinct and in 0..{count - 1}")
        layouts.append(
            LayerLayout(
                index=i, num_experts=count, num_shared=shared[i], always_active=always[i], top_k=layer_k, norm_topk_prob=norm
            )
        )
    return layouts
