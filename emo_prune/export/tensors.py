"""Which GGUF tensors a model becomes, in file order, each read from the checkpoint only when written.

Shapes below are numpy order (GGUF/ggml lists them reversed): H hidden, V vocab, D head dim,
E routed experts (GGUF expert_count), I expert width, S shared width.
  token_embd [V, H], output [V, H], *_norm [H] (q/k norm: [heads*D] "full" or [D] "head")
  attn_q [heads*D, H], attn_k / attn_v [kv_heads*D, H]: q/k rows permuted for NORM RoPE
  ffn_gate_inp [E, H]                 router rows of the ROUTED experts (EMO: the first E of E+s)
  ffn_gate_exps / ffn_up_exps [E, I, H], ffn_down_exps [E, H, I]   experts stacked on dim 0
  ffn_*_shexp [S, H] / [H, S]          EMO's tail expert (S = I) or Qwen2-MoE's shared expert
  ffn_gate_inp_shexp [H]               Qwen2-MoE's sigmoid gate ([1, H] in Hugging Face)
One tensor (for experts: one layer's stack) is in memory at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from emo_prune.errors import CheckpointError
from emo_prune.export.check import GgufLayout
from emo_prune.io import Checkpoint
from emo_prune.io.reader import TensorReader

Load = Callable[[TensorReader], torch.Tensor]  # returns the tensor in fp32, numpy-order GGUF shape


@dataclass(frozen=True)
class GgufTensor:
    name: str
    shape: tuple[int, ...]
    load: Load
    role: str  # "router" | "norm" | "weight": what quantization may touch


def permute_rope_rows(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """Rows of a q/k projection from rotate-half pairs (i, i + D/2) to consecutive pairs (2i, 2i+1).

    [heads*D, ...] -> [heads, 2, D/2, ...] -> swap the pair axis inward -> [heads*D, ...]
    (what llama.cpp's NORM RoPE reads; the same permutation convert_hf_to_gguf.py applies)."""
    shape = weight.shape
    return weight.reshape(heads, 2, shape[0] // heads // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def _plain(name: str, transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Load:
    def load(reader: TensorReader) -> torch.Tensor:
        tensor = reader.get(name).float()
        return transform(tensor) if transform else tensor

    return load


def _stacked(layout: GgufLayout, layer: int, projection: str, ids: list[int], storage: str) -> Load:
    arch = layout.arch

    def load(reader: TensorReader) -> torch.Tensor:
        if storage == "per_expert":
            return torch.stack([reader.get(arch.per_expert_key(layer, e, projection)).float() for e in ids])
        if projection == "down":
            return reader.get_rows(arch.fused_key(layer, "down"), ids).float()  # [n, H, I]
        gate_up = reader.get_rows(arch.fused_key(layer, "gate_up"), ids).float()  # [n, 2I, H]
        half = gate_up.shape[1] // 2
        return gate_up[:, :half] if projection == "gate" else gate_up[:, half:]

    return load


def gguf_tensors(checkpoint: Checkpoint, layout: GgufLayout) -> list[GgufTensor]:
    """The GGUF tensors of `checkpoint`, in the order they are written; shapes from the headers alone."""
    arch, mapping = layout.arch, layout.mapping
    names = set(checkpoint.names)
    cfg = arch.config
    heads = int(cfg["num_attention_heads"])
    kv_heads = int(cfg.get("num_key_value_heads") or heads)
    tensors: list[GgufTensor] = []

    def shape_of(name: str) -> tuple[int, ...]:
        return tuple(checkpoint.tensor(name).shape)

    def add(gguf: str, source: str, role: str = "weight", optional: bool = False) -> None:
        if source not in names:
            if optional:
                return
            raise CheckpointError(f"{checkpoint.path}: tensor {source!r} (GGUF {gguf}) is missing")
        shape = shape_of(source)
        transform = None
        short = gguf.split(".", 2)[-1] if gguf.startswith("blk.") else gguf
        if mapping.permutes_qk and short.startswith(("attn_q.", "attn_k.")):
            n = heads if short.startswith("attn_q.") else kv_heads
            transform = lambda t, n=n: permute_rope_rows(t, n)  # noqa: E731
        if short == "ffn_gate_inp_shexp.weight":  # [1, H] -> [H]
            shape = shape[-1:]
            transform = lambda t: t.reshape(-1)  # noqa: E731
        tensors.append(GgufTensor(gguf, shape, _plain(source, transform), "norm" if len(shape) == 1 else role))

    for gguf, source in mapping.global_tensors.items():
        if gguf == "output.weight" and source not in names:  # tied embeddings: llama.cpp's graphs want `output`
            source = mapping.global_tensors["token_embd.weight"]
        add(gguf, source)
    for lay in arch.layouts:
        i = lay.index
        prefix, blk = arch.family.prefix(i), f"blk.{i}."
        for gguf, source in mapping.layer_tensors.items():
            add(blk + gguf, prefix + source, optional=gguf.endswith(".bias"))
        if lay.is_dense:
            for gguf, source in (mapping.dense_mlp or {}).items():
                add(blk + gguf, prefix + source)
            continue
        tensors += _moe_tensors(checkpoint, layout, i, names)
        if mapping.shared_mlp:
            for gguf, source in mapping.shared_mlp.items():
                add(blk + gguf, prefix + source)
    return tensors


def _moe_tensors(checkpoint: Checkpoint, layout: GgufLayout, layer: int, names: set[str]) -> Iterator[GgufTensor]:
    arch = layout.arch
    lay = arch.layouts[layer]
    blk = f"blk.{layer}."
    routed = list(lay.routed_ids)  # EMO: 0 .. E-s-1; others: every expert
    shared = list(lay.fixed_ids) if layout.num_shared else []
    router = arch.router_weight_key(layer, names)
    hidden = arch.hidden_size
    storage = arch.expert_storage(layer, names)
    if storage == "per_expert":
        width = checkpoint.tensor(arch.per_expert_key(layer, 0, "gate")).shape[0]
    else:
        width = checkpoint.tensor(arch.fused_key(layer, "gate_up")).shape[1] // 2

    def router_rows(reader: TensorReader) -> torch.Tensor:
        return reader.get_rows(router, routed).float()  # [E, H]

    yield GgufTensor(blk + "ffn_gate_inp.weight", (len(routed), hidden), router_rows, "router")
    for projection, shape in (("gate", (width, hidden)), ("up", (width, hidden)), ("down", (hidden, width))):
        yield GgufTensor(
            f"{blk}ffn_{projection}_exps.weight",
            (len(routed), *shape),
            _stacked(layout, layer, projection, routed, storage),
            "weight",
        )
    if layout.num_shared:
        for projection, shape in (("gate", (width, hidden)), ("up", (width, hidden)), ("down", (hidden, width))):
            stacked = _stacked(layout, layer, projection, shared, storage)
            yield GgufTensor(f"{blk}ffn_{projection}_shexp.weight", shape, lambda r, s=stacked: s(r)[0], "weight")
    elif layout.mapping.shared_expert == "tail":
        # EMO without a shared expert: llama.cpp's deepseek graph always adds a shared expert, so it gets
        # one of zeros (expert_shared_count 1): silu(0) * 0 through a zero down projection adds exactly 0.
        for projection, shape in (("gate", (width, hidden)), ("up", (width, hidden)), ("down", (hidden, width))):
            yield GgufTensor(f"{blk}ffn_{projection}_shexp.weight", shape, lambda r, s=shape: torch.zeros(s), "weight")
