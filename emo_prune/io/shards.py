"""Size-capped safetensors shards, each tensor streamed straight into its slot.

Every output tensor's name, dtype and shape are known before any byte is written (they come from
source headers and a plan), so shard layouts, headers and offsets are fixed up front and each tensor
streams straight into its slot: nothing is buffered beyond what the caller holds. Shard file layout
(the safetensors format):
    u64 little-endian N | N bytes of header JSON, space-padded to a multiple of 8 | data block
Inside a shard, tensors are stored by descending element size (then in arrival order), so every
tensor starts at an offset aligned to its element size, as safetensors' own writer does.

`ShardedWriter` writes into a folder that is itself being written atomically (`emo_prune.io.atomic`):
shards are named `*.partial` until every byte is written, then get their final names
(`model-0000i-of-0000N.safetensors`) and the index is written last.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emo_prune.errors import OutputError
from emo_prune.io.atomic import write_new, write_text
from emo_prune.io.checkpoint import INDEX_FILE
from emo_prune.io.dtypes import TAG_BYTES, tag_of

if TYPE_CHECKING:  # torch is imported by write_tensor only: writing bytes needs none
    import torch


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # safetensors tag, e.g. "BF16"
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        n = TAG_BYTES[self.dtype]
        for d in self.shape:
            n *= d
        return n


def plan_shards(specs: list[TensorSpec], max_shard_size: int) -> list[list[TensorSpec]]:
    """Split `specs` (in order) into shards of at most `max_shard_size` data bytes; a bigger tensor goes alone."""
    shards: list[list[TensorSpec]] = [[]]
    size = 0
    for spec in specs:
        if shards[-1] and size + spec.nbytes > max_shard_size:
            shards.append([])
            size = 0
        shards[-1].append(spec)
        size += spec.nbytes
    return shards if shards[0] else []


def shard_name(i: int, n: int) -> str:
    return f"model-{i + 1:05d}-of-{n:05d}.safetensors"


@dataclass
class _Shard:
    file: str  # final name
    header: bytes
    offsets: dict[str, int]  # tensor name -> absolute file offset of its data
    specs: list[TensorSpec]

    @classmethod
    def layout(cls, file: str, specs: list[TensorSpec]) -> _Shard:
        ordered = sorted(enumerate(specs), key=lambda item: (-TAG_BYTES[item[1].dtype], item[0]))
        entries: dict[str, Any] = {"__metadata__": {"format": "pt"}}
        relative, at = {}, 0
        for _, spec in ordered:
            entries[spec.name] = {"dtype": spec.dtype, "shape": list(spec.shape), "data_offsets": [at, at + spec.nbytes]}
            relative[spec.name] = at
            at += spec.nbytes
        raw = json.dumps(entries, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        header = struct.pack("<Q", len(raw)) + raw
        return cls(file, header, {k: len(header) + v for k, v in relative.items()}, specs)


#: writes `nbytes` bytes of one tensor into the open file descriptor `fd` at absolute `offset`; returns bytes written
Filler = Callable[[int, int, int], int]


class ShardedWriter:
    """Writes the tensors of `specs`, in that order, into size-capped shards of `folder`.

    Call `write_from(name, filler)` (or `write_tensor(name, tensor)`) once per spec, in order, then
    `finish()`. Only the shard being written is open; shards carry a `.partial` suffix until `finish`.
    """

    def __init__(self, folder: Path, specs: list[TensorSpec], max_shard_size: int, fsync: bool = True):
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise OutputError("two output tensors share a name: " + next(n for n in names if names.count(n) > 1))
        self.folder = Path(folder)
        self.fsync = fsync
        groups = plan_shards(specs, max_shard_size)
        self.shards = [_Shard.layout(shard_name(i, len(groups)), g) for i, g in enumerate(groups)]
        self._order = [(i, spec) for i, shard in enumerate(self.shards) for spec in shard.specs]
        self._next = 0
        self._fd: int | None = None
        self._open_shard = -1

    @property
    def total_bytes(self) -> int:
        return sum(spec.nbytes for _, spec in self._order)

    def _partial(self, shard: _Shard) -> Path:
        return self.folder / (shard.file + ".partial")

    def _switch_to(self, index: int) -> int:
        if self._open_shard != index:
            self._close()
            shard = self.shards[index]
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            self._fd = os.open(self._partial(shard), flags, 0o644)
            os.write(self._fd, shard.header)
            self._open_shard = index
        assert self._fd is not None
        return self._fd

    def _close(self) -> None:
        if self._fd is not None:
            try:
                if self.fsync:
                    os.fsync(self._fd)
            finally:
                os.close(self._fd)
                self._fd = None

    def write_from(self, name: str, filler: Filler) -> None:
        if self._next >= len(self._order) or self._order[self._next][1].name != name:
            expected = self._order[self._next][1].name if self._next < len(self._order) else "nothing more"
            raise OutputError(f"writer got tensor {name!r} out of order; expected {expected!r}")
        index, spec = self._order[self._next]
        fd = self._switch_to(index)
        written = filler(fd, self.shards[index].offsets[name], spec.nbytes)
        if written != spec.nbytes:
            raise OutputError(f"tensor {name!r}: wrote {written} bytes, its header promises {spec.nbytes}")
        self._next += 1

    def write_tensor(self, name: str, tensor: torch.Tensor) -> None:
        import torch

        spec = self._order[self._next][1] if self._next < len(self._order) else None
        if spec is not None and spec.name == name:
            if tag_of(tensor.dtype) != spec.dtype or tuple(tensor.shape) != spec.shape:
                raise OutputError(
                    f"tensor {name!r} is {tensor.dtype} {tuple(tensor.shape)}, the plan says {spec.dtype} {spec.shape}"
                )
        data = tensor.detach().contiguous().cpu().reshape(-1).view(torch.uint8).numpy()
        self.write_from(name, lambda fd, offset, nbytes: pwrite_all(fd, data.data, offset))

    def finish(self) -> dict[str, Any]:
        """Close, give shards their final names, write the index; returns the index dict."""
        if self._next != len(self._order):
            raise OutputError(f"writer finished after {self._next} of {len(self._order)} tensors")
        self._close()
        for shard in self.shards:
            if not self._partial(shard).exists():  # a shard whose tensors are all empty
                write_new(self._partial(shard), shard.header)
            os.replace(self._partial(shard), self.folder / shard.file)
        index = {
            "metadata": {"total_size": self.total_bytes},
            "weight_map": {spec.name: self.shards[i].file for i, spec in sorted(self._order, key=lambda x: x[1].name)},
        }
        write_text(self.folder / INDEX_FILE, json.dumps(index, indent=2) + "\n")
        return index

    def abort(self) -> None:
        self._close()


def pwrite_all(fd: int, data: memoryview, offset: int) -> int:
    done = 0
    while done < len(data):
        done += os.pwrite(fd, data[done:], offset + done)
    return done
