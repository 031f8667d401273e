"""Read a safetensors header without touching the tensor bytes.

File layout: u64 little-endian N | N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}} | data.
Offsets are relative to the start of the data block. Reading the header is O(header), so facts about a
27 GB model come back instantly; the checks below catch a truncated or garbled shard before any weight
is read.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

from emo_prune.errors import CheckpointError

DTYPE_BYTES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1,
}  # fmt: skip
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


def read_header(path: Path) -> ShardHeader:
    path = Path(path)
    try:
        file_size = path.stat().st_size
        with path.open("rb") as f:
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
        header = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} has a corrupt safetensors header ({exc})") from exc
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} has a corrupt safetensors header (not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    data_size = file_size - 8 - n
    tensors = {}
    for name, entry in header.items():
        try:
            dtype, shape, (begin, end) = entry["dtype"], tuple(int(d) for d in entry["shape"]), entry["data_offsets"]
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: header entry {name!r} is malformed") from exc
        info = TensorInfo(name=name, dtype=dtype, shape=shape, begin=int(begin), end=int(end))
        if dtype not in DTYPE_BYTES or info.nbytes != info.numel * DTYPE_BYTES[dtype]:
            raise CheckpointError(f"{path}: tensor {name!r} has inconsistent dtype/shape/offsets in its header")
        if info.end > data_size:
            raise CheckpointError(
                f"{path} is truncated: tensor {name!r} ends at byte {info.end} of the data block, "
                f"which holds only {data_size} bytes. Re-download or re-copy this shard."
            )
        tensors[name] = info
    return ShardHeader(path=path, file_size=file_size, data_start=8 + n, tensors=tensors, metadata=dict(metadata))
