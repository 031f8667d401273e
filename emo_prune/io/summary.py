"""What is inside an MoE checkpoint, from config.json and safetensors headers only (no weights read).

Parameter accounting: total = every stored tensor; active = total - all expert parameters + the
k_l experts each token uses in layer l (routed top-k plus shared / always-active, which are part
of k). A separate always-on shared expert (Qwen2-MoE) is not an expert here: it counts as dense.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from emo_prune.io import Checkpoint, build_inventory


@dataclass
class LayerSummary:
    index: int
    kind: str  # "moe" | "dense"
    experts: int  # E, shared and always-active included
    routed: int
    shared: int  # tail-shared (EMO)
    always_active: list[int]
    top_k: int
    storage: str | None  # "per_expert" | "fused" | None (dense)
    expert_bytes: int  # one expert
    layer_expert_bytes: int  # all experts of the layer


@dataclass
class ModelSummary:
    path: str
    family: str
    model_type: str
    architectures: list[str]
    num_layers: int
    moe_layers: int
    hidden_size: int
    expert_width: int
    top_k: int
    norm_topk_prob: bool
    per_layer_counts_supported: bool
    total_params: int
    active_params: int
    expert_params: int
    total_bytes: int
    dtypes: dict[str, int]  # safetensors dtype -> parameters
    shards: list[str]
    layers: list[LayerSummary] = field(default_factory=list)

    @property
    def dtype(self) -> str:
        """The dtype holding most parameters."""
        return max(self.dtypes, key=self.dtypes.__getitem__) if self.dtypes else "?"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["dtype"] = self.dtype
        return data


def inspect_model(path: str | Path) -> ModelSummary:
    checkpoint = Checkpoint.open(path)
    arch = checkpoint.architecture
    inventory = build_inventory(checkpoint)
    total = sum(t.numel for t in checkpoint.tensors())
    expert_params = sum(entry.expert_params * entry.layout.num_experts for entry in inventory)
    active_experts = sum(entry.expert_params * entry.layout.top_k for entry in inventory)
    layers = []
    for entry in inventory:
        lay = entry.layout
        layers.append(
            LayerSummary(
                index=lay.index,
                kind="dense" if lay.is_dense else "moe",
                experts=lay.num_experts,
                routed=len(lay.routed_ids),
                shared=0 if lay.always_active else lay.num_shared,
                always_active=list(lay.always_active),
                top_k=lay.top_k,
                storage=entry.storage,
                expert_bytes=entry.expert_bytes,
                layer_expert_bytes=entry.expert_bytes * lay.num_experts,
            )
        )
    return ModelSummary(
        path=str(checkpoint.path),
        family=arch.family.name,
        model_type=arch.model_type,
        architectures=list(checkpoint.config.get("architectures") or []),
        num_layers=arch.num_layers,
        moe_layers=len(arch.moe_layers),
        hidden_size=arch.hidden_size,
        expert_width=arch.expert_width,
        top_k=arch.top_k,
        norm_topk_prob=arch.norm_topk_prob,
        per_layer_counts_supported=arch.family.supports_per_layer_counts,
        total_params=total,
        active_params=total - expert_params + active_experts,
        expert_params=expert_params,
        total_bytes=checkpoint.total_bytes,
        dtypes=checkpoint.dtypes,
        shards=sorted(checkpoint.shards),
        layers=layers,
    )
