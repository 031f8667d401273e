"""What a GGUF file can carry: the check every export (and `--target gguf`) runs first.

llama.cpp has ONE expert count, one top-k and one shared-expert count per model, and each architecture's
graph fixes how the picked weights are normalized. A model that differs is refused with one line per
reason saying why and what to do; nothing is padded or approximated (padding with dummy experts is not
exact: there is no router bias to send them to -inf).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from emo_prune.arch import MoEArchitecture
from emo_prune.arch.layout import config_get
from emo_prune.errors import ExportError
from emo_prune.export.arch import GgufArch, gguf_arch_for

# architectures whose q projection must be exactly hidden wide (llama.cpp creates wq as {n_embd, n_embd})
_Q_IS_HIDDEN = ("deepseek", "olmoe", "qwen2moe")


@dataclass(frozen=True)
class GgufLayout:
    """The uniform shape a model takes in GGUF. Counts are ROUTED experts: EMO's tail-shared expert
    leaves the pool and becomes the `*_shexp` tensors."""

    mapping: GgufArch
    arch: MoEArchitecture
    num_experts: int  # routed experts of every MoE layer: GGUF expert_count
    top_k: int  # routed picks per token: GGUF expert_used_count
    num_shared: int  # tail-shared experts per MoE layer (EMO: 0 or 1)
    dense_lead: int  # leading dense MLP layers
    head_dim: int

    @property
    def moe_layers(self) -> list[int]:
        return [lay.index for lay in self.arch.layouts if not lay.is_dense]


def _reasons(arch: MoEArchitecture, mapping: GgufArch, counts: Sequence[int | None] | None) -> list[str]:
    cfg = arch.config
    name = mapping.arch
    reasons: list[str] = []
    layouts = arch.layouts
    dense = [lay.index for lay in layouts if lay.is_dense]
    moe = [lay for lay in layouts if not lay.is_dense]
    if not moe:
        return [f"no MoE layer: a dense model is not what the {name} export is for"]
    if dense and mapping.dense_layers is None:
        reasons.append(f"dense MLP layers {dense}: llama.cpp's {name} graph has none; export a model whose every layer is MoE")
    elif dense and dense != list(range(len(dense))):
        first_moe = moe[0].index
        late = [i for i in dense if i > first_moe]
        reasons.append(
            f"dense layers {late} after the first MoE layer ({first_moe}): llama.cpp's {name} graph only has "
            f"leading dense layers (leading_dense_block_count)"
        )
    expert_counts = [c for c in (counts if counts is not None else [lay.num_experts for lay in layouts]) if c]
    if len(set(expert_counts)) > 1:
        reasons.append(f"per-layer expert counts {expert_counts}: GGUF needs one count; select with --budget uniform")
    aa = sorted({e for lay in moe for e in lay.always_active})
    if aa:
        reasons.append(f"always-active experts {aa}: llama.cpp has no always-on routed experts; export a build without them")
    shared = sorted({lay.num_shared for lay in moe})
    if len(shared) > 1:
        reasons.append(f"shared experts per layer vary {shared}: GGUF needs one count")
    elif shared[0] > 1:
        reasons.append(
            f"{shared[0]} shared experts per layer: EMO weighs them by their own softmax, llama.cpp adds each with "
            f"weight 1; only 1 shared expert is exact"
        )
    if shared[-1] and mapping.shared_expert != "tail":
        reasons.append(f"tail-shared experts: llama.cpp's {name} mapping has none")
    top_ks = sorted({lay.top_k for lay in moe})
    if len(top_ks) > 1:
        reasons.append(f"per-layer top-k {top_ks}: GGUF needs one expert_used_count")
    elif top_ks[0] - shared[-1] < 1:
        reasons.append(f"top-k {top_ks[0]} leaves no routed pick after {shared[-1]} shared expert(s)")
    if arch.norm_topk_prob != mapping.renormalizes_topk:
        does = "always renormalizes" if mapping.renormalizes_topk else "does not renormalize"
        reasons.append(f"norm_topk_prob={str(arch.norm_topk_prob).lower()}: llama.cpp's {name} graph {does} the top-k weights")
    heads = int(config_get(cfg, "num_attention_heads"))
    head_dim = int(config_get(cfg, "head_dim") or arch.hidden_size // heads)
    if name in _Q_IS_HIDDEN and heads * head_dim != arch.hidden_size:
        reasons.append(
            f"head_dim {head_dim} x {heads} heads != hidden {arch.hidden_size}: llama.cpp's {name} graph needs them equal"
        )
    kv_heads = int(config_get(cfg, "num_key_value_heads") or heads)
    if mapping.qk_norm == "full" and kv_heads != heads:
        reasons.append(
            f"{kv_heads} key/value heads for {heads} query heads: llama.cpp's {name} graph sizes k_norm for "
            f"full multi-head attention (no grouped-query attention)"
        )
    rope = config_get(cfg, "rope_parameters") or config_get(cfg, "rope_scaling") or {}
    if isinstance(rope, Mapping) and rope.get("rope_type", rope.get("type", "default")) not in ("default", None):
        reasons.append(f"RoPE scaling {rope.get('rope_type', rope.get('type'))!r}: only plain RoPE is exported")
    if isinstance(rope, Mapping) and rope.get("partial_rotary_factor", 1.0) != 1.0:
        reasons.append("partial rotary embeddings: only full-width RoPE is exported")
    if config_get(cfg, "use_sliding_window") or (arch.family.name == "mixtral" and config_get(cfg, "sliding_window")):
        reasons.append(f"sliding-window attention: llama.cpp's {name} graph attends to the whole context")
    if config_get(cfg, "attention_bias") and not any(g.endswith(".bias") for g in mapping.layer_tensors):
        reasons.append(f"attention biases: llama.cpp's {name} mapping has none")
    if config_get(cfg, "dense_mlp_bias"):
        reasons.append("dense MLP biases: llama.cpp's graph has none")
    act = config_get(cfg, "hidden_act", "silu")
    if act != "silu":
        reasons.append(f"hidden_act {act!r}: llama.cpp's {name} graph uses SiLU")
    if mapping.shared_expert == "sigmoid_gated" and not config_get(cfg, "shared_expert_intermediate_size"):
        reasons.append(f"no shared expert: llama.cpp's {name} graph requires one")
    return reasons


def gguf_layout(arch: MoEArchitecture, counts: Sequence[int | None] | None = None) -> GgufLayout:
    """The model's GGUF shape, or ExportError listing every reason it cannot be exported exactly.

    `counts` (per layer, None = dense) checks a plan's expert counts instead of the config's."""
    mapping = gguf_arch_for(arch.family.name)
    try:
        reasons = _reasons(arch, mapping, counts)
    except (TypeError, ValueError) as exc:  # a config value of the wrong type
        raise ExportError(f"{arch.family.name} config cannot be read for GGUF: {exc}") from exc
    if reasons:
        raise ExportError(f"cannot export to GGUF ({mapping.arch}): " + "; ".join(reasons))
    moe = arch.moe_layers
    shared = moe[0].num_shared
    heads = int(config_get(arch.config, "num_attention_heads"))
    head_dim = int(config_get(arch.config, "head_dim") or arch.hidden_size // heads)
    total = [c for c in counts if c] if counts is not None else [moe[0].num_experts]
    return GgufLayout(
        mapping=mapping,
        arch=arch,
        num_experts=total[0] - shared,
        top_k=moe[0].top_k - shared,
        num_shared=shared,
        dense_lead=sum(1 for lay in arch.layouts if lay.is_dense),
        head_dim=head_dim,
    )


def check_gguf_target(config: Mapping[str, Any], counts: Sequence[int | None] | None = None) -> None:
    """`--target gguf`: raise ExportError unless a build of this model with these counts can be exported."""
    from emo_prune.arch import architecture_for_config

    gguf_layout(architecture_for_config(config), counts)


TARGETS = ("gguf",)


def check_target_name(target: str | None) -> None:
    if target is not None and target.lower() not in TARGETS:
        raise ExportError(f"--target {target!r} is not one of {', '.join(TARGETS)}")


def check_target(target: str | None, config: Mapping[str, Any], counts: Sequence[int | None]) -> None:
    """`select/extract/run --target T`: ExportError unless a build with these per-layer counts exports to T."""
    check_target_name(target)
    if target is not None:
        check_gguf_target(config, counts)
