"""Where a checkpoint tensor's bytes lie, and reading them: the one place tensor bytes are read.

A tensor, or a chosen list of its dim-0 rows, is a list of (absolute file offset, length) ranges of
one shard, known from the safetensors header alone (`tensor_bytes`: one range per contiguous run of
row ids). Reading is positional file reads (`os.preadv`), one per range, back to back into one
buffer (the caller's, or one from its allocator), viewed at the stored dtype and shape
(`read_tensor`, `read_bytes`). Never a mapping of the shard: every mapped page touched stays resident,
counted in the process's memory, until the shard is unmapped (`emo_prune.models.weights` measured it).

Who reads through here: `io.reader.TensorReader` (export, merge-back, the pool index), `models.weights`
(a model loaded tensor by tensor), `serve.store` (one expert at a time, into anonymous mappings) and
`extract` (its ranges, and its chunked reads for a dtype change or the NaN scan; its same-dtype copies
go file to file through the kernel). Artifacts (`io.artifact`, `extract.coverage_meter`) read their
small statistics files whole with `safe_open` instead: a few MB at most, read once, every tensor wanted.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from emo_prune.errors import CheckpointError
from emo_prune.io.checkpoint import Checkpoint

if TYPE_CHECKING:  # torch loads with the first read, not with `tensor_bytes`
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


@dataclass(frozen=True)
class TensorBytes:
    path: Path  # the shard file
    ranges: tuple[tuple[int, int], ...]  # (absolute file offset, length), concatenated in order
    dtype: str  # safetensors tag of the bytes
    shape: tuple[int, ...]  # of the concatenation: the tensor's, or [len(rows), *its shape[1:]]
    tensor: str  # the tensor's name, for messages

    @property
    def nbytes(self) -> int:
        return sum(length for _, length in self.ranges)


def tensor_bytes(checkpoint: Checkpoint, name: str, rows: Sequence[int] | None = None) -> TensorBytes:
    """Where tensor `name` lies in its shard: all of it, or only `rows` of its dim 0 (in that order,
    repeats allowed, one range per contiguous run)."""
    info = checkpoint.tensor(name)
    shard = checkpoint.shards[checkpoint.weight_map[name]]
    base = shard.data_start + info.begin
    if rows is None:
        return TensorBytes(shard.path, ((base, info.nbytes),), info.dtype, info.shape, name)
    rows = list(rows)
    count = info.shape[0] if info.shape else 0
    outside = next((r for r in rows if not 0 <= r < count), None)
    if outside is not None:
        raise CheckpointError(f"{name!r} has {count} rows in dim 0; row {outside} is not one of them")
    row = info.nbytes // count if count else 0  # bytes of one row: [*shape[1:]] (an empty dim 0: no rows to read)
    ranges = tuple((base + start * row, (stop - start) * row) for start, stop in contiguous_runs(rows))
    return TensorBytes(shard.path, ranges, info.dtype, (len(rows), *info.shape[1:]), name)


def open_shard(path: Path) -> int:
    """A read-only descriptor of shard `path` (the caller closes it)."""
    try:
        return os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise CheckpointError(f"cannot open shard {path}: {exc.strerror or exc}") from exc


@contextmanager
def opened(path: Path) -> Iterator[int]:
    """`open_shard(path)`, closed on leaving."""
    fd = open_shard(path)
    try:
        yield fd
    finally:
        os.close(fd)


def read_at(fd: int, buffer: memoryview, offset: int, where: TensorBytes) -> None:
    """Fill `buffer` from file offset `offset` of `where`'s shard: one positional read, more only when
    the kernel returns fewer bytes; a file that ends first is truncated."""
    done = 0
    while done < len(buffer):
        try:
            n = os.preadv(fd, [buffer[done:]], offset + done)
        except OSError as exc:
            raise CheckpointError(f"cannot read {where.tensor!r} from {where.path}: {exc.strerror or exc}") from exc
        if n == 0:
            raise CheckpointError(f"{where.path} is truncated: {where.tensor!r} needs {len(buffer)} bytes, {done} were read")
        done += n


def read_ranges(fd: int, where: TensorBytes, buffer: memoryview) -> None:
    """`where`'s ranges back to back into `buffer`, which holds exactly `where.nbytes`."""
    if len(buffer) != where.nbytes:
        raise CheckpointError(f"{where.tensor!r} holds {where.nbytes} bytes, not the {len(buffer)} its slot needs")
    at = 0
    for offset, length in where.ranges:
        read_at(fd, buffer[at : at + length], offset, where)
        at += length


def fresh(nbytes: int) -> torch.Tensor:
    """uint8 [nbytes] from torch's allocator: the default buffer of a read."""
    import torch

    return torch.empty(nbytes, dtype=torch.uint8)


def read_bytes(
    fd: int,
    where: TensorBytes,
    into: torch.Tensor | None = None,
    allocate: Callable[[int], torch.Tensor] = fresh,
) -> torch.Tensor:
    """`where`'s bytes from the open shard `fd`, as a CPU tensor at the stored dtype, shape `where.shape`.

    They land in `into` (a contiguous CPU uint8 [where.nbytes]) when given, else in `allocate(nbytes)`;
    the result is a view of that buffer."""
    from emo_prune.io.dtypes import torch_dtype

    buffer = allocate(where.nbytes) if into is None else into
    read_ranges(fd, where, buffer.numpy().data)  # a memoryview of its bytes
    return buffer.view(torch_dtype(where.dtype)).reshape(where.shape)


def read_tensor(
    checkpoint: Checkpoint,
    name: str,
    rows: Sequence[int] | None = None,
    into: torch.Tensor | None = None,
    allocate: Callable[[int], torch.Tensor] = fresh,
) -> torch.Tensor:
    """Tensor `name` as stored (CPU, its own dtype), or only `rows` of its dim 0 ([len(rows), ...], in
    that order), read with file reads (see `read_bytes` for `into` and `allocate`)."""
    where = tensor_bytes(checkpoint, name, rows)
    with opened(where.path) as fd:
        return read_bytes(fd, where, into, allocate)
