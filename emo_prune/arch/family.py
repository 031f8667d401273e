"""The declarative description of one MoE family, parsed from `families/<name>.json`.

A family file says where a model keeps its router and experts, in both on-disk layouts that
transformers checkpoints use:
  - per-expert: one tensor per expert and projection, the expert id in the key
    (`...experts.{expert}.gate_proj.weight` [I, H]); what `save_pretrained` writes;
  - fused: one 3-D tensor per layer, the expert id along dim 0
    (`...experts.gate_up_proj` [E, 2I, H] = [gate; up] on dim 1, `...experts.down_proj` [E, H, I]);
    what transformers 5 modules hold in memory.
Plus which config keys carry expert counts and top-k, and how shared experts, always-active experts,
per-layer counts and dense layers are expressed. Key patterns are relative to `layer_prefix`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emo_prune.errors import UnknownArchitectureError

PROJECTIONS = ("gate", "up", "down")


@dataclass(frozen=True)
class RouterSpec:
    module: str  # module path under a layer, e.g. "mlp.gate" (the transformers 5 module name)
    weight: tuple[str, ...]  # candidate on-disk names of the [E, H] weight, first match wins
    bias: tuple[str, ...] = ()  # candidate names of per-expert router vectors [E] (bias, correction bias)


@dataclass(frozen=True)
class ExpertsSpec:
    module: str  # module path of the experts container, e.g. "mlp.experts"
    per_expert: dict[str, str]  # projection -> pattern with {expert}; gate/up [I, H], down [H, I]
    fused: dict[str, str]  # "gate_up" -> [E, 2I, H], "down" -> [E, H, I]


@dataclass(frozen=True)
class SharedExpertsSpec:
    kind: str  # "tail": the last s experts of the routed pool; "separate": own module, never pruned
    count_key: str | None = None
    per_layer_key: str | None = None
    width_key: str | None = None
    tensors: tuple[str, ...] = ()  # name prefixes of a separate shared expert (copied as they are)


@dataclass(frozen=True)
class DenseLayersSpec:
    kind: str  # "zero_count": a per-layer count of 0; "sparse_step": Qwen mlp_only_layers / decoder_sparse_step
    width_key: str
    tensors: tuple[str, ...]
    mlp_only_key: str | None = None
    step_key: str | None = None


@dataclass(frozen=True)
class FamilySpec:
    name: str
    description: str
    model_types: tuple[str, ...]
    architectures: tuple[str, ...]
    layer_prefix: str
    config_keys: dict[str, Any]
    defaults: dict[str, Any]
    router: RouterSpec
    experts: ExpertsSpec
    shared_experts: SharedExpertsSpec | None = None
    always_active: dict[str, str] | None = None
    per_layer_counts: dict[str, str] | None = None
    dense_layers: DenseLayersSpec | None = None
    native_model: str | None = None  # module that registers a transformers model for this family
    source: str = field(default="", compare=False)

    @property
    def supports_per_layer_counts(self) -> bool:
        """Whether a config can give each layer its own expert count (needed by --budget global)."""
        return self.per_layer_counts is not None

    @property
    def num_experts_keys(self) -> tuple[str, ...]:
        keys = self.config_keys["num_experts"]
        return tuple(keys) if isinstance(keys, list) else (keys,)

    def prefix(self, layer: int) -> str:
        return self.layer_prefix.format(layer=layer)


_REQUIRED = ("name", "model_types", "layer_prefix", "config_keys", "router", "experts")
_REQUIRED_CONFIG_KEYS = ("num_layers", "hidden_size", "num_experts", "top_k", "expert_width")


def parse_family(data: dict[str, Any], source: str = "<dict>") -> FamilySpec:
    """Validate and freeze one family description; errors name the file and the missing field."""
    missing = [k for k in _REQUIRED if k not in data]
    missing += [f"config_keys.{k}" for k in _REQUIRED_CONFIG_KEYS if k not in data.get("config_keys", {})]
    experts = data.get("experts", {})
    missing += [f"experts.per_expert.{p}" for p in PROJECTIONS if p not in experts.get("per_expert", {})]
    missing += [f"experts.fused.{p}" for p in ("gate_up", "down") if p not in experts.get("fused", {})]
    if missing:
        raise UnknownArchitectureError(f"family description {source} lacks {', '.join(missing)}")
    router = data["router"]
    shared = data.get("shared_experts")
    dense = data.get("dense_layers")
    return FamilySpec(
        name=data["name"],
        description=data.get("description", ""),
        model_types=tuple(data["model_types"]),
        architectures=tuple(data.get("architectures", ())),
        layer_prefix=data["layer_prefix"],
        config_keys=dict(data["config_keys"]),
        defaults=dict(data.get("defaults", {})),
        router=RouterSpec(router["module"], tuple(router["weight"]), tuple(router.get("bias", ()))),
        experts=ExpertsSpec(experts["module"], dict(experts["per_expert"]), dict(experts["fused"])),
        shared_experts=None
        if shared is None
        else SharedExpertsSpec(
            kind=shared["kind"],
            count_key=shared.get("count_key"),
            per_layer_key=shared.get("per_layer_key"),
            width_key=shared.get("width_key"),
            tensors=tuple(shared.get("tensors", ())),
        ),
        always_active=data.get("always_active"),
        per_layer_counts=data.get("per_layer_counts"),
        dense_layers=None
        if dense is None
        else DenseLayersSpec(
            kind=dense["kind"],
            width_key=dense["width_key"],
            tensors=tuple(dense.get("tensors", ())),
            mlp_only_key=dense.get("mlp_only_key"),
            step_key=dense.get("step_key"),
        ),
        native_model=data.get("native_model"),
        source=source,
    )


def load_family_file(path: Path) -> FamilySpec:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UnknownArchitectureError(f"cannot read family description {path}: {exc}") from exc
    return parse_family(data, source=str(path))
