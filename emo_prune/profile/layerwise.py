"""The layer-by-layer runner: profile a model larger than memory, one decoder layer at a time.

Shapes: B rows, S sequence, H hidden, I expert width, E experts of the layer.

The model exists as a weightless module tree (meta device). Embeddings are read once to produce the
first activations; then for each layer i only that layer's tensors are read from the safetensors
shards (one shard handle, closed after the layer so its pages leave memory), every calibration batch
is pushed through layer i, and the layer goes back to meta. Peak memory: one layer's weights plus the
activations of the whole calibration set (CPU or --offload-dir), independent of depth.

To run layer i exactly as the model does (its own causal / sliding-window masks, rotary tables,
position ids), the decoder's OWN forward is called on the stored activations (`inputs_embeds`) with
layers < i replaced by the identity and a hook on layer i that captures its output and stops the
forward. On-disk per-expert tensors are copied one by one into the fused in-memory parameters
(gate_up_proj [E, 2I, H] = [gate; up] on dim 1, down_proj [E, H, I]) as the family file describes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from emo_prune.arch import MoEArchitecture
from emo_prune.errors import CheckpointError
from emo_prune.io import Checkpoint, TensorReader
from emo_prune.profile.activations import ActivationStore
from emo_prune.profile.batches import Batch
from emo_prune.profile.collector import StatsCollector
from emo_prune.profile.model import decoder_of, meta_model

FUSED_PARAM = {"gate_up": "gate_up_proj", "down": "down_proj"}


class _LayerDone(Exception):
    """Raised by the hook on layer i: its output is captured, the rest of the forward is not needed."""

    def __init__(self, output: torch.Tensor):
        self.output = output


def _identity(hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    return hidden_states


def _stop(_module: nn.Module, _inputs, output) -> None:
    raise _LayerDone(output[0] if isinstance(output, tuple) else output)


def layer_state(
    checkpoint: Checkpoint, arch: MoEArchitecture, index: int, dtype: torch.dtype, device: torch.device
) -> dict[str, torch.Tensor]:
    """Layer `index`'s tensors under the in-memory module names, per-expert tensors fused."""
    family = arch.family
    prefix = family.prefix(index)
    names = [n for n in checkpoint.names if n.startswith(prefix)]
    if not names:
        raise CheckpointError(f"{checkpoint.path} holds no tensor of layer {index} (prefix {prefix!r})")
    state: dict[str, torch.Tensor] = {}
    fused: dict[str, torch.Tensor] = {}
    E = arch.layouts[index].num_experts
    with TensorReader(checkpoint) as reader:
        for name in sorted(names, key=lambda n: checkpoint.weight_map[n]):  # one shard after the other
            role = arch.classify(name)
            if role.kind == "router":
                state[f"{family.router.module}.weight"] = reader.get(name).to(device, dtype)
            elif role.kind == "router_vector":
                state[f"{family.router.module}.{name.rsplit('.', 1)[1]}"] = reader.get(name).to(device, dtype)
            elif role.kind == "fused":
                state[f"{family.experts.module}.{FUSED_PARAM[role.projection]}"] = reader.get(name).to(device, dtype)
            elif role.kind == "expert":
                _copy_expert(fused, reader.get(name), role.expert, role.projection, E, dtype, device)
            else:
                state[name[len(prefix) :]] = reader.get(name).to(device, dtype)
    for which, tensor in fused.items():
        state[f"{family.experts.module}.{FUSED_PARAM[which]}"] = tensor
    return state


def _copy_expert(
    fused: dict[str, torch.Tensor], tensor: torch.Tensor, expert: int, projection: str, E: int, dtype, device
) -> None:
    """Copy one on-disk expert projection (gate/up [I, H], down [H, I]) into the fused parameter."""
    if projection == "down":
        H, I = tensor.shape
        target = fused.setdefault("down", torch.empty(E, H, I, dtype=dtype, device=device))
        target[expert].copy_(tensor)
        return
    I, H = tensor.shape
    target = fused.setdefault("gate_up", torch.empty(E, 2 * I, H, dtype=dtype, device=device))
    rows = slice(0, I) if projection == "gate" else slice(I, 2 * I)
    target[expert, rows].copy_(tensor)


def _load_layer(layer: nn.Module, state: dict[str, torch.Tensor], index: int) -> None:
    shapes = {name: tuple(t.shape) for name, t in layer.state_dict().items()}
    missing, unexpected = sorted(set(shapes) - set(state)), sorted(set(state) - set(shapes))
    if missing or unexpected:
        raise CheckpointError(
            f"layer {index}: the checkpoint's tensors do not match the model built from config.json "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    for name, tensor in state.items():
        if shapes[name] != tuple(tensor.shape):
            raise CheckpointError(f"layer {index}: {name} has shape {tuple(tensor.shape)}, the config implies {shapes[name]}")
    layer.load_state_dict(state, strict=True, assign=True)


def _embeddings(checkpoint: Checkpoint, model: nn.Module, batches: list[Batch], store: ActivationStore, dtype, device) -> None:
    module = model.get_input_embeddings()
    qualified = next(name for name, m in model.named_modules() if m is module)
    key = f"{qualified}.weight"
    with TensorReader(checkpoint) as reader:
        weight = reader.get(key).to(device, dtype)  # [V, H]
    for b, batch in enumerate(batches):
        store.put(b, F.embedding(batch.input_ids.to(device), weight))  # [B, S, H]
    del weight


def run_layerwise(
    checkpoint: Checkpoint,
    batches: list[Batch],
    collector: StatsCollector,
    device: torch.device,
    dtype: torch.dtype,
    progress: Callable[[int], None] | None = None,
    offload_dir=None,
) -> None:
    arch = checkpoint.architecture
    model = meta_model(checkpoint.path, dtype, device)
    decoder = decoder_of(model)
    layers = decoder.layers
    contexts = [collector.context(batch) for batch in batches]
    for batch in batches:
        collector.count(batch)
    with ActivationStore(offload_dir) as store, torch.inference_mode():
        _embeddings(checkpoint, model, batches, store, dtype, device)
        for i, layout in enumerate(arch.layouts):
            layer = layers[i]
            _load_layer(layer, layer_state(checkpoint, arch, i, dtype, device), i)
            detach = collector.attach(layer, layout, arch.family)
            stop = layer.register_forward_hook(_stop)
            try:
                for b, batch in enumerate(batches):
                    collector.activate(contexts[b])
                    try:
                        decoder(
                            inputs_embeds=store.get(b).to(device),
                            attention_mask=batch.attention_mask.to(device),
                            use_cache=False,
                        )
                    except _LayerDone as done:
                        store.put(b, done.output)
                    else:
                        raise AssertionError(f"layer {i} never ran")
                    if progress is not None:
                        progress(batch.num_tokens)
            finally:
                collector.activate(None)
                stop.remove()
                detach()
            layer.to("meta")  # frees the layer's weights
            layer.forward = _identity  # later layers' runs pass straight through this one
