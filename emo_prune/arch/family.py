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
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from emo_prune.errors import UnknownArchitectureError

PROJECTIONS = ("gate", "up", "down")
REQUIRED_CONFIG_KEYS = ("num_layers", "hidden_size", "num_experts", "top_k", "expert_width")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RouterSpec(_Frozen):
    module: str  # module path under a layer, e.g. "mlp.gate" (the transformers 5 module name)
    weight: tuple[str, ...]  # candidate on-disk names of the [E, H] weight, first match wins
    bias: tuple[str, ...] = ()  # candidate names of per-expert router vectors [E] (bias, correction bias)


class ExpertsSpec(_Frozen):
    module: str  # module path of the experts container, e.g. "mlp.experts"
    per_expert: dict[str, str]  # projection -> pattern with {expert}; gate/up [I, H], down [H, I]
    fused: dict[str, str]  # "gate_up" -> [E, 2I, H], "down" -> [E, H, I]

    @model_validator(mode="after")
    def _all_projections(self) -> ExpertsSpec:
        missing = [f"per_expert.{p}" for p in PROJECTIONS if p not in self.per_expert]
        missing += [f"fused.{p}" for p in ("gate_up", "down") if p not in self.fused]
        if missing:
            raise ValueError(f"lacks {', '.join(missing)}")
        return self


class SharedExpertsSpec(_Frozen):
    kind: Literal["tail", "separate"]  # "tail": the last s experts of the routed pool; "separate": own module, never pruned
    count_key: str | None = None
    per_layer_key: str | None = None
    width_key: str | None = None
    tensors: tuple[str, ...] = ()  # name prefixes of a separate shared expert (copied as they are)


class DenseLayersSpec(_Frozen):
    kind: Literal[
        "zero_count", "sparse_step"
    ]  # "zero_count": a per-layer count of 0; "sparse_step": Qwen mlp_only_layers / decoder_sparse_step
    width_key: str
    tensors: tuple[str, ...]
    mlp_only_key: str | None = None
    step_key: str | None = None

    @model_validator(mode="after")
    def _sparse_step_names_its_keys(self) -> DenseLayersSpec:
        if self.kind == "sparse_step" and not (self.mlp_only_key and self.step_key):
            raise ValueError("a sparse_step dense-layer spec names mlp_only_key and step_key")
        return self


class FamilySpec(_Frozen):
    name: str
    description: str = ""
    model_types: tuple[str, ...]
    architectures: tuple[str, ...] = ()
    layer_prefix: str
    config_keys: dict[str, Any]
    defaults: dict[str, Any] = Field(default_factory=dict)
    router: RouterSpec
    experts: ExpertsSpec
    shared_experts: SharedExpertsSpec | None = None
    always_active: dict[str, str] | None = None
    per_layer_counts: dict[str, str] | None = None
    dense_layers: DenseLayersSpec | None = None
    native_model: str | None = None  # module that registers a transformers model for this family
    source: str = Field(default="", exclude=True)

    @model_validator(mode="after")
    def _required_config_keys(self) -> FamilySpec:
        missing = [f"config_keys.{k}" for k in REQUIRED_CONFIG_KEYS if k not in self.config_keys]
        if missing:
            raise ValueError(f"lacks {', '.join(missing)}")
        return self

    def __eq__(self, other: object) -> bool:  # the file a family came from is not part of its identity
        return isinstance(other, FamilySpec) and self.model_dump() == other.model_dump()

    def __hash__(self) -> int:
        return hash(self.name)

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


def parse_family(data: dict[str, Any], source: str = "<dict>") -> FamilySpec:
    """Validate and freeze one family description; errors name the file and the offending fields."""
    try:
        return FamilySpec.model_validate({**data, "source": source})
    except ValidationError as exc:
        errors = exc.errors()
    where = [".".join(str(part) for part in error["loc"]) for error in errors]
    missing = [w for w, error in zip(where, errors) if error["type"] == "missing"]
    problems = [f"lacks {', '.join(missing)}"] if missing else []
    problems += [
        f"{w or 'field'}: {error['msg'].removeprefix('Value error, ')}" if w else error["msg"].removeprefix("Value error, ")
        for w, error in zip(where, errors)
        if error["type"] != "missing"
    ]
    raise UnknownArchitectureError(f"family description {source} {'; '.join(problems)}")


def load_family_file(path: Path) -> FamilySpec:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UnknownArchitectureError(f"cannot read family description {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise UnknownArchitectureError(f"family description {path} is not a JSON object")
    return parse_family(data, source=str(path))
