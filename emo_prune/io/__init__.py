"""On-disk checkpoints: safetensors headers, validation, identity, lazy reads and atomic sharded writes."""

from emo_prune.io.checkpoint import CONFIG_FILE, INDEX_FILE, SINGLE_FILE, Checkpoint, read_json
from emo_prune.io.identity import model_identity, sha256_file
from emo_prune.io.inventory import LayerTensors, build_inventory
from emo_prune.io.reader import TensorReader, contiguous_runs
from emo_prune.io.safetensors_header import ShardHeader, TensorInfo, read_header

__all__ = [
    "CONFIG_FILE",
    "INDEX_FILE",
    "SINGLE_FILE",
    "Checkpoint",
    "LayerTensors",
    "ShardHeader",
    "TensorInfo",
    "TensorReader",
    "build_inventory",
    "contiguous_runs",
    "model_identity",
    "read_header",
    "read_json",
    "sha256_file",
]
