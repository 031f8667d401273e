"""Lazy tensor reads from a checkpoint: one shard open at a time, only the bytes asked for.

`get_rows` reads selected dim-0 rows of a fused [E, ...] tensor, one contiguous run of ids at a time,
so pruning a fused layer never materializes the experts it drops.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from emo_prune.errors import CheckpointError
from emo_prune.io.checkpoint import Checkpoint

if TYPE_CHECKING:  # torch and safetensors load with the first read, not with `contiguous_runs`
    import torch


def contiguous_runs(ids: Sequence[int]) -> list[tuple[int, int]]:
    """[3, 4, 5, 9, 1] -> [(3, 6), (9, 10), (1, 2)]: half-open runs, order preserved."""
    runs: list[tuple[int, int]] = []
    for i in ids:
        if runs and runs[-1][1] == i:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    return runs


class TensorReader:
    def __init__(self, checkpoint: Checkpoint, device: str = "cpu"):
        self.checkpoint = checkpoint
        self.device = device
        self._shard: str | None = None
        self._handle: Any = None

    def _open(self, name: str) -> Any:
        shard = self.checkpoint.weight_map.get(name)
        if shard is None:
            raise CheckpointError(f"tensor {name!r} is not in {self.checkpoint.path}")
        if shard != self._shard:
            from safetensors import safe_open

            self.close()
            try:
                self._handle = safe_open(str(self.checkpoint.shard_path(shard)), framework="pt", device=self.device)
            except Exception as exc:  # safetensors raises its own error types
                raise CheckpointError(f"cannot open shard {self.checkpoint.shard_path(shard)}: {exc}") from exc
            self._shard = shard
        return self._handle

    def get(self, name: str) -> torch.Tensor:
        return self._open(name).get_tensor(name)

    def get_rows(self, name: str, rows: Sequence[int]) -> torch.Tensor:
        """Rows `rows` (in that order) of dim 0 of tensor `name`: [len(rows), ...]."""
        handle = self._open(name)
        sliced = handle.get_slice(name)
        parts = [sliced[start:stop] for start, stop in contiguous_runs(list(rows))]
        if len(parts) == 1:
            return parts[0]
        import torch

        return torch.cat(parts, dim=0)

    def close(self) -> None:
        self._handle = None
        self._shard = None

    def __enter__(self) -> TensorReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
