"""A concrete model's architecture: its family, its config and the tensor names of each layer's MoE.

Tensor roles (what `classify` returns for an on-disk name):
  router        [E, H] router weight of a layer (rows are experts)
  router_vector [E]    per-expert router bias / correction bias
  expert        [I, H] or [H, I] one projection of one expert (per-expert layout)
  fused         [E, 2I, H] gate_up or [E, H, I] down of a whole layer (fused layout)
  other         anything else (attention, norms, embeddings, dense MLPs, separate shared experts)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from emo_prune.arch.family import PROJECTIONS, FamilySpec
from emo_prune.arch.layout import LayerLayout, compute_layouts, config_get, config_int
from emo_prune.errors import CheckpointError

ExpertStorage = Literal["per_expert", "fused"]


@dataclass(frozen=True)
class TensorRole:
    kind: Literal["router", "router_vector", "expert", "fused", "other"]
    layer: int | None = None
    expert: int | None = None
    projection: str | None = None  # gate / up / down for experts, gate_up / down for fused


def _pattern_regex(layer_prefix: str, pattern: str) -> re.Pattern[str]:
    text = re.escape(layer_prefix + pattern)
    text = text.replace(re.escape("{layer}"), r"(?P<layer>\d+)").replace(re.escape("{expert}"), r"(?P<expert>\d+)")
    return re.compile(text + r"$")


def layers_held(family: FamilySpec, names: Iterable[str]) -> int:
    """How many distinct layer indices tensor `names` use under the family's `layer_prefix` (a bound on
    the layer count a config may claim, computed from headers only)."""
    regex = re.compile(re.escape(family.layer_prefix).replace(re.escape("{layer}"), r"(\d+)"))
    found = (regex.match(name) for name in names)
    return len({m.group(1).lstrip("0") for m in found if m})


@dataclass(frozen=True)
class MoEArchitecture:
    family: FamilySpec
    config: Mapping[str, Any]
    layouts: tuple[LayerLayout, ...] = field(compare=False)

    @classmethod
    def from_config(cls, family: FamilySpec, config: Mapping[str, Any]) -> MoEArchitecture:
        return cls(family=family, config=config, layouts=tuple(compute_layouts(family, config)))

    # ---- scalar facts -------------------------------------------------------------------------
    @property
    def model_type(self) -> str:
        return str(self.config.get("model_type"))

    @property
    def num_layers(self) -> int:
        return len(self.layouts)

    @property
    def hidden_size(self) -> int:
        return self._required_int("hidden_size")

    @property
    def expert_width(self) -> int:
        return self._required_int("expert_width")

    @property
    def top_k(self) -> int:
        return self._required_int("top_k")

    def _required_int(self, fact: str) -> int:
        """A whole-number fact the family names a config key for (families/*.json `config_keys`)."""
        key = self.family.config_keys[fact]
        return config_int(config_get(self.config, key), key)

    @property
    def norm_topk_prob(self) -> bool:
        key = self.family.config_keys.get("norm_topk_prob")
        return bool(config_get(self.config, key, self.family.defaults.get("norm_topk_prob", False)))

    @property
    def moe_layers(self) -> list[LayerLayout]:
        return [lay for lay in self.layouts if not lay.is_dense]

    # ---- tensor names -------------------------------------------------------------------------
    def per_expert_key(self, layer: int, expert: int, projection: str) -> str:
        return self.family.prefix(layer) + self.family.experts.per_expert[projection].format(expert=expert)

    def fused_key(self, layer: int, which: str) -> str:
        return self.family.prefix(layer) + self.family.experts.fused[which]

    def router_weight_key(self, layer: int, names: Iterable[str]) -> str:
        names = set(names)
        candidates = [self.family.prefix(layer) + c for c in self.family.router.weight]
        for candidate in candidates:
            if candidate in names:
                return candidate
        raise CheckpointError(f"layer {layer}: no router weight among {candidates}")

    def router_vector_keys(self, layer: int, names: Iterable[str]) -> list[str]:
        names = set(names)
        return [self.family.prefix(layer) + c for c in self.family.router.bias if self.family.prefix(layer) + c in names]

    def expert_storage(self, layer: int, names: Iterable[str]) -> ExpertStorage:
        """Which on-disk layout a layer's experts use; both in one layer is an error."""
        names = set(names)
        fused = all(self.fused_key(layer, w) in names for w in ("gate_up", "down"))
        per_expert = self.per_expert_key(layer, 0, "gate") in names
        if fused and per_expert:
            raise CheckpointError(f"layer {layer} holds experts in both the fused and the per-expert layout")
        if fused:
            return "fused"
        if per_expert:
            return "per_expert"
        raise CheckpointError(
            f"layer {layer}: no expert tensors found (looked for {self.per_expert_key(layer, 0, 'gate')!r} "
            f"and {self.fused_key(layer, 'gate_up')!r})"
        )

    @cached_property
    def _matchers(self) -> list[tuple[re.Pattern[str], str, str | None]]:
        fam = self.family
        matchers: list[tuple[re.Pattern[str], str, str | None]] = []
        for pattern in fam.router.weight:
            matchers.append((_pattern_regex(fam.layer_prefix, pattern), "router", None))
        for pattern in fam.router.bias:
            matchers.append((_pattern_regex(fam.layer_prefix, pattern), "router_vector", None))
        for proj in PROJECTIONS:
            matchers.append((_pattern_regex(fam.layer_prefix, fam.experts.per_expert[proj]), "expert", proj))
        for which in ("gate_up", "down"):
            matchers.append((_pattern_regex(fam.layer_prefix, fam.experts.fused[which]), "fused", which))
        return matchers

    def classify(self, name: str) -> TensorRole:
        for regex, kind, projection in self._matchers:
            match = regex.match(name)
            if match:
                groups = match.groupdict()
                expert = int(groups["expert"]) if groups.get("expert") is not None else None
                return TensorRole(kind=kind, layer=int(groups["layer"]), expert=expert, projection=projection)  # type: ignore[arg-type]
        return TensorRole(kind="other")
