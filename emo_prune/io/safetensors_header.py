"""Read a safetensors header without touching the tensor bytes.

File layout: u64 little-endian N | N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}} | data.
Offsets are relative to the start of the data block. Reading the header is O(header), so facts about a
27 GB model come back instantly; the checks below catch a truncated or garbled shard before any weight
is read.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from emo_prune.errors import CheckpointError
from emo_prune.io.dtypes import TAG_BYTES
from emo_prune.io.model_files import open_regular

MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str  # safetensors dtype tag, e.g. "BF16"
    shape: tuple[int, ...]
    begin: int  # byte offset inside the data block
    end: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.end - self.begin


@dataclass(frozen=True)
class ShardHeader:
    path: Path
    file_size: int
    data_start: int  # 8 + N
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str]


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    seen: dict[str, object] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"the key {key!r} appears twice")
        seen[key] = value
    return seen


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _tensor_info(name: str, entry: object) -> TensorInfo:
    """One header entry, checked as safetensors checks it: known dtype, int dims, int offsets, sizes that agree."""
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(entry):
        raise ValueError("must hold dtype, shape and data_offsets")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in TAG_BYTES:
        raise ValueError(f"dtype {dtype!r} is not a safetensors dtype")
    if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
        raise ValueError(f"shape {shape!r} is not a list of non-negative integers")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_int(o) and o >= 0 for o in offsets):
        raise ValueError(f"data_offsets {offsets!r} is not a pair of non-negative integers")
    info = TensorInfo(name=name, dtype=dtype, shape=tuple(shape), begin=offsets[0], end=offsets[1])
    if info.end < info.begin or info.nbytes != info.numel * TAG_BYTES[dtype]:
        raise ValueError(
            f"data_offsets {offsets} hold {info.end - info.begin} bytes, but {dtype} {list(shape)} needs "
            f"{info.numel * TAG_BYTES[dtype]}"
        )
    return info


def read_header(path: Path) -> ShardHeader:
    """The header of one shard, validated as safetensors validates it, or CheckpointError naming the fault.

    Beyond well-formed entries: tensors sorted by offset must tile the data block exactly (each begins
    where the previous ends, the first at 0, the last at the end of the file), so no two tensors share
    a byte and no byte is unaccounted for; `__metadata__` is a str -> str map.
    """
    path = Path(path)
    fd = open_regular(path, "safetensors file")  # never a FIFO or device: a read from one could block forever
    try:
        file_size = os.fstat(fd).st_size
        with os.fdopen(fd, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise CheckpointError(f"{path} is truncated: {file_size} bytes, not even a safetensors header length")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER_BYTES or 8 + n > file_size:
                raise CheckpointError(
                    f"{path} is not a valid safetensors file (header length {n} does not fit in {file_size} bytes); "
                    f"it may be truncated or not safetensors"
                )
            raw = f.read(n)
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        header = json.loads(raw, object_pairs_hook=_unique_keys)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{path} has a corrupt safetensors header ({exc})") from exc
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} has a corrupt safetensors header (not a JSON object)")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        shown = json.dumps(metadata)[:80]
        raise CheckpointError(
            f"{path}: the header's __metadata__ must map strings to strings, got {shown}; not a valid safetensors file"
        )
    tensors = {}
    for name, entry in header.items():
        try:
            tensors[name] = _tensor_info(name, entry)
        except ValueError as exc:
            raise CheckpointError(f"{path}: header entry {name!r} is malformed: {exc}") from None
    data_size = file_size - 8 - n
    at, previous = 0, None
    for info in sorted(tensors.values(), key=lambda t: (t.begin, t.end)):
        if info.begin != at:
            what = "overlaps" if info.begin < at else "leaves a gap after"
            raise CheckpointError(
                f"{path}: tensor {info.name!r} starts at byte {info.begin} of the data block, which {what} "
                f"{'the start' if previous is None else repr(previous)} (ends at {at}); the header lies about its offsets"
            )
        at, previous = info.end, info.name
    if at > data_size:
        raise CheckpointError(
            f"{path} is truncated: tensor {previous!r} ends at byte {at} of the data block, "
            f"which holds only {data_size} bytes. Re-download or re-copy this shard."
        )
    if at < data_size:
        raise CheckpointError(
            f"{path}: {data_size - at} bytes after the last tensor belong to none; not a valid safetensors file"
        )
    return ShardHeader(path=path, file_size=file_size, data_start=8 + n, tensors=tensors, metadata=dict(metadata))
