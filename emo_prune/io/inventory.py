"""Which on-disk tensor holds which expert: the per-layer map every streaming step works from.

For each layer: its layout (from the config), where the router and its per-expert vectors are, and the
expert tensors in whichever layout the checkpoint uses (per-expert keys, or fused [E, ...] tensors).
Building it checks that the shards agree with the config, so that a checkpoint that lies (a config
claiming more experts than its tensors hold, a router with the wrong rows) is refused before anything
is written: router [E, H] and router vectors [E] rows, fused dim 0, every per-expert key of every
expert present and none beyond E, and one dtype and shape per projection across a layer's experts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from emo_prune.arch import ExpertStorage, LayerLayout, MoEArchitecture
from emo_prune.arch.family import PROJECTIONS
from emo_prune.errors import CheckpointError, ConfigError
from emo_prune.io.checkpoint import Checkpoint


@dataclass
class LayerTensors:
    layout: LayerLayout
    storage: ExpertStorage | None = None  # None for a dense layer
    router: str | None = None  # [E, H]
    router_vectors: list[str] = field(default_factory=list)  # [E] each
    per_expert: dict[int, dict[str, str]] = field(default_factory=dict)  # expert -> projection -> name
    fused: dict[str, str] = field(default_factory=dict)  # "gate_up" [E, 2I, H], "down" [E, H, I]
    expert_params: int = 0  # parameters of ONE expert (gate + up + down)
    expert_bytes: int = 0  # bytes of ONE expert on disk

    @property
    def index(self) -> int:
        return self.layout.index


def build_inventory(checkpoint: Checkpoint) -> list[LayerTensors]:
    arch = checkpoint.architecture
    names = set(checkpoint.names)
    hidden, _ = arch.hidden_size, arch.expert_width  # both read (and validated) from the config
    # expert ids per layer from the per-expert key names, classified once (a release EMO has ~6k keys:
    # classifying them again for every layer was 94% of `inspect`)
    expert_ids: dict[int, set[int]] = {}
    for name in names:
        role = arch.classify(name)
        if role.kind == "expert" and role.layer is not None and role.expert is not None:
            expert_ids.setdefault(role.layer, set()).add(role.expert)
    layers = []
    for layout in arch.layouts:
        entry = LayerTensors(layout=layout)
        layers.append(entry)
        if layout.is_dense:
            _no_experts(arch, layout.index, names)
            continue
        i, E = layout.index, layout.num_experts
        lie = f" ({_count_keys(arch)} in config.json); fix the config or restore the tensors"
        entry.router = arch.router_weight_key(i, names)
        router_shape = checkpoint.tensor(entry.router).shape
        if len(router_shape) != 2:
            raise CheckpointError(f"{entry.router} has shape {list(router_shape)}; a router weight is [experts, hidden]")
        if router_shape[0] != E:
            raise CheckpointError(f"{entry.router} has {router_shape[0]} rows but the config gives layer {i} {E} experts{lie}")
        if router_shape[1] != hidden:
            raise CheckpointError(f"{entry.router} has {router_shape[1]} columns but the config's hidden size is {hidden}")
        entry.router_vectors = arch.router_vector_keys(i, names)
        for name in entry.router_vectors:
            shape = checkpoint.tensor(name).shape
            if shape != (E,):
                raise CheckpointError(f"{name} has shape {list(shape)} but the config gives layer {i} {E} experts ([E]){lie}")
        entry.storage = arch.expert_storage(i, names)
        if entry.storage == "fused":
            entry.fused = {w: arch.fused_key(i, w) for w in ("gate_up", "down")}
            infos = [checkpoint.tensor(n) for n in entry.fused.values()]
            for info in infos:
                if not info.shape or info.shape[0] != E:
                    raise CheckpointError(
                        f"{info.name} stacks {info.shape[0] if info.shape else 0} experts but the config gives layer {i} {E}{lie}"
                    )
            entry.expert_params = sum(t.numel for t in infos) // E
            entry.expert_bytes = sum(t.nbytes for t in infos) // E
        else:
            for e in range(E):
                keys = {p: arch.per_expert_key(i, e, p) for p in PROJECTIONS}
                missing = [k for k in keys.values() if k not in names]
                if missing:
                    raise CheckpointError(
                        f"the config gives layer {i} {E} experts, but {missing[0]!r} is not in the checkpoint{lie}"
                    )
                entry.per_expert[e] = keys
            extra = sorted(e for e in expert_ids.get(i, ()) if e >= E)
            if extra:
                raise CheckpointError(f"layer {i} holds expert {extra[0]} but the config gives it only {E} experts{lie}")
            _one_kind_per_projection(checkpoint, i, entry.per_expert)
            infos = [checkpoint.tensor(n) for n in entry.per_expert[0].values()]
            entry.expert_params = sum(t.numel for t in infos)
            entry.expert_bytes = sum(t.nbytes for t in infos)
    return layers


def _one_kind_per_projection(checkpoint: Checkpoint, layer: int, per_expert: dict[int, dict[str, str]]) -> None:
    """Every expert of a layer stores each projection with the same dtype and shape (as expert 0 does)."""
    first = {p: checkpoint.tensor(n) for p, n in per_expert[0].items()}
    for projections in per_expert.values():
        for projection, name in projections.items():
            info, ref = checkpoint.tensor(name), first[projection]
            if (info.dtype, info.shape) != (ref.dtype, ref.shape):
                raise CheckpointError(
                    f"layer {layer}: {name} is {info.dtype} {list(info.shape)}, but expert 0's {projection} is "
                    f"{ref.dtype} {list(ref.shape)}; all experts of a layer must agree"
                )


def _no_experts(arch: MoEArchitecture, layer: int, names: set[str]) -> None:
    """A layer the config declares dense holds no router and no expert tensor (else the config lies)."""
    prefix = arch.family.prefix(layer)
    held = sorted(n for n in names if n.startswith(prefix) and arch.classify(n).kind != "other")
    if held:
        raise ConfigError(
            f"the config declares layer {layer} dense (0 experts, {_count_keys(arch)}), but the checkpoint holds its "
            f"MoE tensors ({held[0]!r}{f' and {len(held) - 1} more' if len(held) > 1 else ''}); fix the config"
        )


def _count_keys(arch: MoEArchitecture) -> str:
    """The config keys that set a layer's expert count, as a user would look for them."""
    keys = [k for k in (*arch.family.num_experts_keys, (arch.family.per_layer_counts or {}).get("key")) if k in arch.config]
    return " / ".join(repr(k) for k in keys) or repr(arch.family.num_experts_keys[0])
