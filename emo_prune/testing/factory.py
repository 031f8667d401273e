"""Tiny random checkpoints of every supported family, in the real Hugging Face on-disk layout.

`write_tiny_model(out_dir, "olmoe")` builds the family's real transformers model from a small config,
initializes it from `seed`, and saves it with `save_pretrained` (per-expert keys, as released models
are) or in the fused layout (`experts.gate_up_proj` [E, 2I, H], as transformers 5 holds them in
memory), optionally sharded, with a locally trained tokenizer. Same arguments, same bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedConfig

from emo_prune.testing.tokenizer import save_tokenizer, seed_tokenizer

FAMILIES = ("emo", "olmoe", "mixtral", "qwen2_moe", "qwen3_moe")


@dataclass
class TinySpec:
    """Sizes of a tiny model; family-specific knobs are ignored where a family has no such concept."""

    family: str = "emo"
    layers: int = 2
    hidden: int = 64
    heads: int = 4
    kv_heads: int = 2
    experts: int = 8
    top_k: int = 2
    expert_width: int = 32
    shared: int = 1  # EMO: tail-shared experts per layer
    experts_per_layer: list[int] | None = None  # EMO: per-layer counts, 0 = dense layer
    always_active: list[int] | None = None  # EMO: explicit always-on ids
    dense_layers: list[int] = field(default_factory=list)  # Qwen: mlp_only_layers
    norm_topk_prob: bool = False
    vocab_size: int = 512
    extra: dict[str, Any] = field(default_factory=dict)  # raw config overrides


# Widths of the optional MLPs relative to one expert's width, by how the family expresses them.
SHARED_EXPERT_WIDTH = 2  # a separate shared expert (Qwen2-MoE)
DENSE_WIDTH = {"zero_count": 2, "sparse_step": 3}  # dense layers (EMO count 0, Qwen mlp_only_layers)


def tiny_config(spec: TinySpec, eos_token_id: int = 0, pad_token_id: int = 1) -> PreTrainedConfig:
    """The family's own transformers config class with tiny sizes.

    Config key names come from the family description (emo_prune/arch/families/<family>.json): the
    same data that reads a checkpoint writes one, so a new family needs no code here.
    """
    from emo_prune.arch.registry import family_for_model_type

    family = family_for_model_type(spec.family)
    keys = family.config_keys
    values: dict[str, Any] = {
        keys["num_layers"]: spec.layers,
        keys["hidden_size"]: spec.hidden,
        keys["top_k"]: spec.top_k,
        keys["expert_width"]: spec.expert_width,
        family.num_experts_keys[0]: spec.experts,
        "vocab_size": spec.vocab_size,
        "num_attention_heads": spec.heads,
        "num_key_value_heads": spec.kv_heads,
        "head_dim": spec.hidden // spec.heads,
        "max_position_embeddings": 512,
        "eos_token_id": eos_token_id,
        "pad_token_id": pad_token_id,
        "bos_token_id": None,
        "tie_word_embeddings": False,
    }
    if keys.get("norm_topk_prob"):
        values[keys["norm_topk_prob"]] = spec.norm_topk_prob
    shared = family.shared_experts
    if shared is not None and shared.kind == "tail":
        values[shared.count_key] = spec.shared
    elif shared is not None and shared.kind == "separate":
        values[shared.width_key] = SHARED_EXPERT_WIDTH * spec.expert_width
    if family.per_layer_counts is not None:
        values[family.per_layer_counts["key"]] = spec.experts_per_layer
    if family.always_active is not None:
        values[family.always_active["key"]] = spec.always_active
    dense = family.dense_layers
    if dense is not None and dense.kind == "zero_count":
        has_dense = bool(spec.experts_per_layer) and 0 in spec.experts_per_layer
        values[dense.width_key] = DENSE_WIDTH[dense.kind] * spec.expert_width if has_dense else None
    elif dense is not None and dense.kind == "sparse_step":
        values[dense.width_key] = DENSE_WIDTH[dense.kind] * spec.expert_width
        values[dense.mlp_only_key] = list(spec.dense_layers)
    values.update(spec.extra)
    return AutoConfig.for_model(spec.family, **values)


def build_tiny_model(spec: TinySpec, seed: int = 0, router_scale: float = 10.0) -> torch.nn.Module:
    """A randomly initialized model; router weights are scaled up so routing is decisive (no near-ties)."""
    tokenizer_vocab = spec.vocab_size
    config = tiny_config(spec)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    assert config.vocab_size == tokenizer_vocab
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("mlp.gate.weight"):
                param.mul_(router_scale)
    return model.eval()


def write_tiny_model(
    out_dir: str | Path,
    family: str = "emo",
    *,
    seed: int = 0,
    storage: Literal["per_expert", "fused"] = "per_expert",
    max_shard_size: str | int | None = None,
    dtype: torch.dtype = torch.float32,
    with_tokenizer: bool = True,
    **sizes: Any,
) -> Path:
    """Write a tiny `family` checkpoint to `out_dir` (created) and return its path.

    `sizes` are TinySpec fields (layers, hidden, experts, top_k, shared, experts_per_layer, ...).
    """
    spec = TinySpec(family=family, **sizes)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = seed_tokenizer(spec.vocab_size)
    model = build_tiny_model(spec, seed=seed).to(dtype)
    model.save_pretrained(
        str(out),
        max_shard_size=max_shard_size or "5GB",
        save_original_format=(storage == "per_expert"),
    )
    if with_tokenizer:
        save_tokenizer(tokenizer, out)
    return out


def tiny_model_zoo(root: str | Path, seed: int = 0) -> dict[str, Path]:
    """One default tiny checkpoint per supported family under `root` (used by tests)."""
    root = Path(root)
    return {family: write_tiny_model(root / family, family, seed=seed) for family in FAMILIES}


def _hole(fd: int, offset: int, nbytes: int) -> int:
    """A ShardedWriter filler that writes nothing: the file grows past the tensor, a sparse hole."""
    os.ftruncate(fd, max(os.fstat(fd).st_size, offset + nbytes))
    return nbytes


def write_large_emo(
    out_dir: str | Path,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.bfloat16,
    max_shard_size: str = "2GB",
    router_scale: float = 10.0,
    sparse: bool = False,
    **sizes: Any,
) -> Path:
    """An EMO checkpoint of any size in AI2's per-expert layout, streamed to disk tensor by tensor.

    `write_tiny_model` builds the model in memory; this writes the same layout (names and shapes from
    the config's meta model, experts split per expert) with random N(0, 0.02) weights, norms 1 and routers
    scaled by `router_scale`, never holding more than one tensor: for benchmarks of models of many GB.
    `sparse`: real headers, but every weight a hole in the file (all zeros, no disk used, written at
    once): for header-only commands on release-sized shapes (27 GB in seconds).
    """
    from emo_prune.io.dtypes import tag_of
    from emo_prune.io.shards import ShardedWriter, TensorSpec
    from emo_prune.io.sizes import parse_size

    spec = TinySpec(family="emo", **sizes)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = tiny_config(spec)
    with torch.device("meta"):
        meta = AutoModelForCausalLM.from_config(config)
    tag = tag_of(dtype)
    specs: list[TensorSpec] = []
    for name, param in meta.state_dict().items():
        if name.endswith("mlp.experts.gate_up_proj"):  # [E, 2I, H] -> per expert gate [I, H] and up [I, H]
            E, I2, H = param.shape
            stem = name.removesuffix("gate_up_proj")
            specs += [TensorSpec(f"{stem}{e}.{p}_proj.weight", tag, (I2 // 2, H)) for e in range(E) for p in ("gate", "up")]
        elif name.endswith("mlp.experts.down_proj"):  # [E, H, I] -> per expert down [H, I]
            stem = name.removesuffix("down_proj")
            specs += [TensorSpec(f"{stem}{e}.down_proj.weight", tag, tuple(param.shape[1:])) for e in range(param.shape[0])]
        else:
            specs.append(TensorSpec(name, tag, tuple(param.shape)))
    generator = torch.Generator().manual_seed(seed)
    writer = ShardedWriter(out, specs, parse_size(max_shard_size))
    for s in specs:
        if sparse:
            writer.write_from(s.name, _hole)
            continue
        if s.name.endswith("norm.weight"):
            tensor = torch.ones(s.shape, dtype=dtype)
        else:
            std = config.initializer_range * (router_scale if s.name.endswith("mlp.gate.weight") else 1.0)
            tensor = (torch.randn(s.shape, generator=generator) * std).to(dtype)
        writer.write_tensor(s.name, tensor)
    writer.finish()
    config.dtype = dtype
    config.save_pretrained(str(out))
    save_tokenizer(seed_tokenizer(spec.vocab_size), out)
    return out
