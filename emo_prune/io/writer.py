"""The names `emo_prune.io.writer` used to define, re-exported for callers not yet moved.

Writing lives in one module per concept: `emo_prune.io.atomic` (atomic folders and files),
`emo_prune.io.shards` (the size-capped sharded safetensors writer) and `emo_prune.io.sizes` (sizes
as users write them). New code imports from those.
"""

from emo_prune.io.atomic import (
    OLD_TAG,
    PARTIAL_MARKER,
    AtomicFolder,
    atomic_write,
    atomic_write_text,
    check_writable,
    write_new,
    write_text,
)
from emo_prune.io.shards import Filler, ShardedWriter, TensorSpec, plan_shards, pwrite_all, shard_name
from emo_prune.io.sizes import parse_size

__all__ = [
    "OLD_TAG",
    "PARTIAL_MARKER",
    "AtomicFolder",
    "Filler",
    "ShardedWriter",
    "TensorSpec",
    "atomic_write",
    "atomic_write_text",
    "check_writable",
    "parse_size",
    "plan_shards",
    "pwrite_all",
    "shard_name",
    "write_new",
    "write_text",
]
