"""Lazy tensor reads from a checkpoint: one shard open at a time, only the bytes asked for.

Reads go by byte range (`emo_prune.io.ranges`): plain positional reads of the tensor's bytes, no mapping
of the shard, so what was read is all that stays in memory. `get_rows` reads selected dim-0 rows of a
fused [E, ...] tensor, one range per contiguous run of ids, so pruning a fused layer never
materializes the experts it drops.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from emo_prune.io.checkpoint import Checkpoint
from emo_prune.io.ranges import TensorBytes, open_shard, read_bytes, tensor_bytes

if TYPE_CHECKING:  # torch loads with the first read
    import torch


class TensorReader:
    """`get` / `get_rows` of one checkpoint, the last shard read kept open; results on `device` (read on
    the CPU, then moved)."""

    def __init__(self, checkpoint: Checkpoint, device: str = "cpu"):
        self.checkpoint = checkpoint
        self.device = device
        self._shard: Path | None = None
        self._fd: int | None = None

    def get(self, name: str) -> torch.Tensor:
        return self._read(tensor_bytes(self.checkpoint, name))

    def get_rows(self, name: str, rows: Sequence[int]) -> torch.Tensor:
        """Rows `rows` (in that order) of dim 0 of tensor `name`: [len(rows), ...]."""
        return self._read(tensor_bytes(self.checkpoint, name, rows))

    def _read(self, where: TensorBytes) -> torch.Tensor:
        return read_bytes(self._descriptor(where.path), where).to(self.device)

    def _descriptor(self, shard: Path) -> int:
        """The open descriptor of `shard`, closing the previous shard's."""
        if self._fd is None or shard != self._shard:
            self.close()
            self._fd = open_shard(shard)
            self._shard = shard
        return self._fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None
        self._shard = None

    def __enter__(self) -> TensorReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
