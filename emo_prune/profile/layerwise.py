"""The layer-by-layer profiler: profile a model larger than memory, one decoder layer at a time.

Shapes: B rows, S sequence, H hidden.

Embeddings are read once to produce the first activations; then for each layer i only that layer's
tensors are read (`emo_prune.models.stream.LayerStream`), every calibration batch is pushed through
layer i with the statistics hooks attached, and the layer leaves memory. Peak memory: one layer's
weights plus the activations of the whole calibration set (CPU or --offload-dir), independent of depth.
"""

from __future__ import annotations

import torch

from emo_prune.io import Checkpoint
from emo_prune.models.stream import LayerStream
from emo_prune.profile.activations import ActivationStore
from emo_prune.profile.batches import Batch
from emo_prune.profile.collector import StatsCollector
from emo_prune.profile.progress import token_progress


def run_layerwise(
    checkpoint: Checkpoint,
    batches: list[Batch],
    collector: StatsCollector,
    device: torch.device,
    dtype: torch.dtype,
    offload_dir=None,
) -> None:
    arch = checkpoint.architecture
    stream = LayerStream(checkpoint, dtype, device)
    contexts = [collector.context(batch) for batch in batches]
    for batch in batches:
        collector.count(batch)
    total = arch.num_layers * sum(batch.num_tokens for batch in batches)  # every batch through every layer
    with ActivationStore(offload_dir) as store, torch.inference_mode(), token_progress(total) as advance:
        with stream.module(stream.embed_name()) as embed:
            for b, batch in enumerate(batches):
                store.put(b, embed(batch.input_ids.to(device)))  # [B, S, H]
        for i, layout in enumerate(arch.layouts):
            with stream.layer(i) as layer:
                detach = collector.attach(layer, layout, arch.family)
                try:
                    for b, batch in enumerate(batches):
                        collector.activate(contexts[b])
                        store.put(b, stream.run(store.get(b), batch.attention_mask))
                        advance(batch.num_tokens)
                finally:
                    collector.activate(None)
                    detach()
