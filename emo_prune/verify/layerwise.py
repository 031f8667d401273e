"""`verify` layer by layer: one decoder layer in memory at a time, for models larger than memory.

Shapes: S tokens of one prompt, H hidden, V vocab.

Each prompt runs alone (batch 1, as the whole-model verify). Both models go through
`emo_prune.models.stream.LayerStream`: the embeddings of each, then for each layer i, layer i of the
ORIGINAL with its router masked to the plan's kept experts (`masked_experts` on that layer), then
layer i of the build. The build's layer runs twice: on its own model's activations (the chain that
ends in its logits) and on the original's, so that per layer the two layers are compared ON THE SAME
INPUTS: the first layer above the tolerance is where a build goes wrong. Last, the final norm and
output head of each model give the logits [S, V], compared exactly as the whole-model verify does
(on CPU the floats are the same as the whole model's forward).
"""

from __future__ import annotations

import torch

from emo_prune.io import Checkpoint
from emo_prune.models.stream import LayerStream
from emo_prune.select.masking import masked_experts
from emo_prune.select.plan import Kept


def _max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    diffs = [float((x.float() - y.float()).abs().max()) for x, y in zip(a, b, strict=True)]
    return max(d if d == d else float("inf") for d in diffs)  # NaN must fail, not compare False


@torch.inference_mode()
def layerwise_logits(
    original: Checkpoint, pruned: Checkpoint, kept: Kept, encoded: list[list[int]], device: str = "cpu"
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[float]]:
    """(masked original's logits, build's logits) per prompt, each [S, V] float32, and the per-layer max
    |difference| of the two layers' outputs on the same inputs."""
    dtype = torch.float32
    masked, build = LayerStream(original, dtype, torch.device(device)), LayerStream(pruned, dtype, torch.device(device))
    ids = [torch.tensor([e], device=device) for e in encoded]  # [1, S] each
    with masked.module(masked.embed_name()) as embed:
        expected = [embed(x) for x in ids]  # [1, S, H] each
    with build.module(build.embed_name()) as embed:
        got = [embed(x) for x in ids]
    arch = original.architecture
    per_layer: list[float] = []
    for i in range(arch.num_layers):
        inputs = expected
        with masked.layer(i), masked_experts(masked.model, arch, kept, layers={i}):
            expected = [masked.run(h) for h in inputs]
        with build.layer(i):
            same_inputs = [build.run(h) for h in inputs]
            got = [build.run(h) for h in got]
        per_layer.append(_max_diff(expected, same_inputs))
    return _logits(masked, expected), _logits(build, got), per_layer


def _logits(stream: LayerStream, hidden: list[torch.Tensor]) -> list[torch.Tensor]:
    norm_name, head_name = stream.logits_names()
    with stream.module(norm_name) as norm, stream.module(head_name) as head:
        return [head(norm(h))[0].float() for h in hidden]  # [S, V] each
