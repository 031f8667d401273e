"""A model run one decoder layer at a time: the mechanism of every path for models larger than memory.

Shapes: B rows, S sequence, H hidden, V vocab.

The model exists as a weightless module tree (meta device, `weights.meta_model`). A caller loads one
module at a time (`with stream.layer(i) as layer:` or `with stream.module("lm_head") as head:`),
pushes its activations through it, and the module's weights leave memory when the block ends.
Profile (`--layerwise`), verify and greedy selection all walk the layers this way, so each holds one
layer of each model it reads, plus the activations between two layers.

To run layer i exactly as the whole model does (its own causal / sliding-window masks, rotary tables,
position ids), `run` calls the decoder's OWN forward on the activations (`inputs_embeds`), with the
layers before i replaced by the identity (they already ran) and a hook on layer i that captures its
output and stops the forward. On CPU this computes the same floats as the whole model's forward.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from emo_prune.io import Checkpoint
from emo_prune.memory.allocator import release_freed_memory
from emo_prune.models.stop import run_until
from emo_prune.models.weights import decoder_of, load_layer, load_module, meta_model


def _identity(hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    return hidden_states


class LayerStream:
    """One checkpoint's model, its modules loaded on demand; layers are entered in order 0, 1, ..."""

    def __init__(self, checkpoint: Checkpoint, dtype: torch.dtype, device: torch.device):
        self.checkpoint = checkpoint
        self.arch = checkpoint.architecture
        self.dtype, self.device = dtype, torch.device(device)
        self.model = meta_model(checkpoint, dtype, self.device)
        self.decoder = decoder_of(self.model)
        self._running: nn.Module | None = None  # the layer entered with `layer(i)`

    @contextmanager
    def module(self, name: str) -> Iterator[nn.Module]:
        """A module outside the layers (`model.embed_tokens`, `model.norm`, `lm_head`), loaded for the block."""
        module = load_module(self.model, self.checkpoint, name, self.dtype, self.device)
        try:
            yield module
        finally:
            module.to("meta")
            release_freed_memory()  # the module's weights leave the process (emo_prune/memory/allocator.py)

    @contextmanager
    def layer(self, index: int) -> Iterator[nn.Module]:
        """Decoder layer `index`, loaded for the block; `run` pushes activations through it."""
        layer = load_layer(self.model, self.checkpoint, index, self.dtype, self.device)
        self._running = layer
        try:
            yield layer
        finally:
            self._running = None
            layer.to("meta")  # frees the layer's weights
            release_freed_memory()  # ... and gives them back to the system (emo_prune/memory/allocator.py)
            layer.forward = _identity  # later layers' runs pass straight through this one

    def run(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The layer entered with `layer(i)` on its input hidden [B, S, H] -> its output [B, S, H]."""
        if self._running is None:
            raise RuntimeError("LayerStream.run outside a `with stream.layer(i)` block")
        return run_until(
            self._running,
            lambda: self.decoder(
                inputs_embeds=hidden.to(self.device, self.dtype),
                attention_mask=None if attention_mask is None else attention_mask.to(self.device),
                use_cache=False,
            ),
        )

    def embed_name(self) -> str:
        embeddings = self.model.get_input_embeddings()
        return next(name for name, m in self.model.named_modules() if m is embeddings)

    def logits_names(self) -> tuple[str, str]:
        """The final norm and the output head, as module names."""
        head = self.model.get_output_embeddings()
        norm = next(name for name, m in self.model.named_modules() if m is self.decoder.norm)
        return norm, next(name for name, m in self.model.named_modules() if m is head)
