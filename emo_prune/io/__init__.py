"""On-disk checkpoints: safetensors headers, validation, identity, lazy reads and atomic sharded writes."""

from emo_prune.common.lazy import exports_of, lazy_exports

_EXPORTS = exports_of(
    {
        "emo_prune.io.checkpoint": ["CONFIG_FILE", "INDEX_FILE", "SINGLE_FILE", "Checkpoint", "read_json"],
        "emo_prune.io.identity": ["model_identity", "sha256_file"],
        "emo_prune.io.inventory": ["LayerTensors", "build_inventory"],
        "emo_prune.io.ranges": ["TensorBytes", "contiguous_runs", "read_tensor", "tensor_bytes"],
        "emo_prune.io.reader": ["TensorReader"],
        "emo_prune.io.safetensors_header": ["ShardHeader", "TensorInfo", "read_header"],
    }
)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
