"""Peak memory of a command, estimated from the checkpoint's headers before anything is loaded.

Shapes: B rows per forward, S sequence, H hidden, I expert width, k experts per token, E experts of a
layer, V vocab, L layers, N tokens kept between two layers (the whole calibration / prompt set).

One estimate = weights resident at once + activations + KV cache + the runtime (Python, torch,
transformers: 0.6 GB, the RSS of a process that only imports emo-prune, measured by
examples/benchmarks/extract_benchmark.py as 580-603 MB). Weights count at the compute dtype (a bf16 checkpoint
verified in float32 takes twice its file size). The "whole" path holds every weight; the
"layerwise" path holds the largest decoder layer (or the embeddings / output head, whichever is
larger) of each model it reads, plus the activations of every row between two layers.

Activations of one forward, per token: the residual stream and the tensors an attention and an MoE
block make from it (about 8 H-wide tensors), the experts' intermediate (k * 3I), the router logits
(E, float32), and eager attention scores (heads * S, float32); with logits, V float32 values twice
(the logits and lm-eval's / verify's log-softmax or copy). These are upper bounds of a forward's live
set, not measurements of one kernel; the benchmark (examples/benchmarks/memory_benchmark.py) checks the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from emo_prune.common.units import rough_bytes
from emo_prune.io import Checkpoint

if TYPE_CHECKING:
    import torch

RUNTIME_BYTES = 600_000_000


@dataclass(frozen=True)
class Estimate:
    path: str  # "whole" | "layerwise"
    weights: int
    activations: int
    kv_cache: int = 0
    runtime: int = RUNTIME_BYTES

    @property
    def total(self) -> int:
        return self.weights + self.activations + self.kv_cache + self.runtime

    def describe(self) -> str:
        parts = f"weights {rough_bytes(self.weights)} + activations {rough_bytes(self.activations)}"
        if self.kv_cache:
            parts += f" + KV cache {rough_bytes(self.kv_cache)}"
        return f"{rough_bytes(self.total)} ({parts} + runtime {rough_bytes(self.runtime)})"


@dataclass(frozen=True)
class Shapes:
    """The sizes an activation estimate needs, read from a checkpoint's config.json."""

    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    layers: int
    top_k: int
    expert_width: int
    experts: int

    @classmethod
    def of(cls, checkpoint: Checkpoint) -> Shapes:
        arch, config = checkpoint.architecture, checkpoint.config
        heads = int(config.get("num_attention_heads") or 1)
        return cls(
            hidden=arch.hidden_size,
            heads=heads,
            kv_heads=int(config.get("num_key_value_heads") or heads),
            head_dim=int(config.get("head_dim") or arch.hidden_size // heads),
            vocab=int(config.get("vocab_size") or 0),
            layers=arch.num_layers,
            top_k=arch.top_k,
            expert_width=arch.expert_width,
            experts=max((lay.num_experts for lay in arch.layouts), default=0),
        )


def _itemsize(dtype: torch.dtype) -> int:
    return dtype.itemsize


def weight_bytes(checkpoint: Checkpoint, dtype: torch.dtype) -> tuple[int, int]:
    """(all weights, the most held at once layer by layer) in `dtype`."""
    per_layer = [0] * checkpoint.architecture.num_layers
    other: dict[str, int] = {}
    prefix = checkpoint.architecture.family.layer_prefix.split("{layer}")[0]  # "model.layers."
    for t in checkpoint.tensors():
        n = t.numel * _itemsize(dtype)
        if t.name.startswith(prefix):
            per_layer[int(t.name[len(prefix) :].split(".", 1)[0])] += n
        else:
            module = t.name.rsplit(".", 1)[0]  # model.embed_tokens, lm_head, model.norm
            other[module] = other.get(module, 0) + n
    total = sum(per_layer) + sum(other.values())
    return total, max([*per_layer, *other.values(), 0])


def forward_bytes(shapes: Shapes, rows: int, seq_len: int, dtype: torch.dtype, logits: bool) -> int:
    """Live activations of one forward of [rows, seq_len] tokens (see the module docstring)."""
    tokens = rows * seq_len
    size = _itemsize(dtype)
    per_token = 8 * shapes.hidden * size + 3 * shapes.top_k * shapes.expert_width * size + 4 * shapes.experts
    scores = rows * shapes.heads * seq_len * seq_len * 4  # [B, heads, S, S] float32
    head = 2 * tokens * shapes.vocab * 4 if logits else 0  # [B, S, V] float32, twice
    return tokens * per_token + scores + head


def kept_bytes(shapes: Shapes, tokens: int, dtype: torch.dtype) -> int:
    """Hidden states of `tokens` tokens kept between two layers: [N, H]."""
    return tokens * shapes.hidden * _itemsize(dtype)


def kv_cache_bytes(shapes: Shapes, rows: int, seq_len: int, dtype: torch.dtype) -> int:
    """Keys and values of every layer for [rows, seq_len]: 2 * L * B * S * kv_heads * D."""
    return 2 * shapes.layers * rows * seq_len * shapes.kv_heads * shapes.head_dim * _itemsize(dtype)


@dataclass(frozen=True)
class Workload:
    """What one command pushes through the model."""

    rows: int  # per forward
    seq_len: int  # tokens per row (the longest)
    kept_tokens: int  # tokens whose hidden states the layerwise path keeps between layers (0: on disk)
    logits: bool = False  # computes the output head
    kv_cache: bool = False  # keeps keys / values across the forward


def estimates(
    checkpoints: list[Checkpoint], dtype: torch.dtype, work: Workload, *, together: bool = False
) -> dict[str, Estimate]:
    """{"whole": ..., "layerwise": ...} for running `work` on the models of `checkpoints`.

    `together`: the layerwise path holds one layer of every model at once (verify runs both side by
    side); the whole path always loads the models one after the other.
    """
    shapes = [Shapes.of(c) for c in checkpoints]
    weights = [weight_bytes(c, dtype) for c in checkpoints]
    step = max(forward_bytes(s, work.rows, work.seq_len, dtype, work.logits) for s in shapes)
    cache = max(kv_cache_bytes(s, work.rows, work.seq_len, dtype) for s in shapes) if work.kv_cache else 0
    whole = Estimate("whole", max(total for total, _ in weights), step, cache)
    held = sum(one for _, one in weights) if together else max(one for _, one in weights)
    kept = sum(kept_bytes(s, work.kept_tokens, dtype) for s in shapes)  # one activation set per model
    layerwise = Estimate("layerwise", held, step + kept)  # keys / values die with their layer
    return {"whole": whole, "layerwise": layerwise}
