"""Where each output tensor's bytes come from: byte ranges of one source shard, copied without a detour.

Every tensor an extraction writes is a concatenation of whole rows of one source tensor: a copied
tensor is one range, a kept expert's tensor is one range, a fused [E, ...] tensor or a router [E, H]
sliced to the kept experts is one range per contiguous run of kept ids. So an output tensor is
described by (shard file, [(absolute offset, length), ...]) from the safetensors headers alone
(`emo_prune.io.ranges.TensorBytes`, whose positional reads this module's reads are too).

Copies go through the kernel (`os.sendfile`, file to file): no weight byte enters Python memory, so
peak RSS stays at the interpreter's own, whatever the model size. A dtype change (--dtype) reads
CHUNK-sized pieces with `os.pread`, converts them with torch (imported only then) and writes them, so memory stays at about
3 x CHUNK. Why not `safe_open`: it maps the whole shard, and every page touched stays resident (and is
counted in RSS) until the shard is closed, i.e. up to a whole shard's worth per shard.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from emo_prune.errors import CheckpointError, OutputError
from emo_prune.io.dtypes import TAG_BYTES
from emo_prune.io.ranges import TensorBytes, opened, read_at
from emo_prune.io.shards import pwrite_all

CHUNK = 32 * 1024 * 1024  # bytes read per dtype-conversion step; 3 x CHUNK is the extra memory
_SENDFILE_MAX = 1 << 30  # one sendfile call moves at most ~2 GiB on Linux; stay well below


def copy_into(source: TensorBytes, out_fd: int, out_offset: int, out_dtype: str) -> int:
    """Write `source` into `out_fd` at `out_offset`, converted to `out_dtype`; returns bytes written."""
    with opened(source.path) as in_fd:
        try:
            if out_dtype == source.dtype:
                return _copy_same(in_fd, source, out_fd, out_offset)
            return _copy_converted(in_fd, source, out_fd, out_offset, out_dtype)
        except OSError as exc:
            raise OutputError(f"writing data read from {source.path} failed: {exc.strerror or exc}") from exc


def _copy_same(in_fd: int, source: TensorBytes, out_fd: int, out_offset: int) -> int:
    written = 0
    for offset, length in source.ranges:
        done = 0
        while done < length:
            os.lseek(out_fd, out_offset + written + done, os.SEEK_SET)  # sendfile writes at the file position
            try:
                n = os.sendfile(out_fd, in_fd, offset + done, min(length - done, _SENDFILE_MAX))
            except OSError as exc:
                if exc.errno not in (22, 38, 95):  # EINVAL / ENOSYS / EOPNOTSUPP: no file-to-file sendfile here
                    raise
                n = _copy_buffered(in_fd, source, offset + done, min(length - done, CHUNK), out_fd, out_offset + written + done)
            if n == 0:
                raise CheckpointError(f"{source.path} ended early (truncated while being read?)")
            done += n
        written += length
    return written


def _copy_buffered(in_fd: int, source: TensorBytes, offset: int, length: int, out_fd: int, out_offset: int) -> int:
    """Where file-to-file sendfile is missing: `length` bytes of `source`'s shard at `offset` through memory."""
    buffer = memoryview(bytearray(length))
    read_at(in_fd, buffer, offset, source)
    return pwrite_all(out_fd, buffer, out_offset)


def chunks(in_fd: int, source: TensorBytes) -> Iterator[np.ndarray]:
    """`source`'s bytes, CHUNK at a time in whole elements: uint8 views of ONE reused buffer (use each before the next)."""
    item = TAG_BYTES[source.dtype]
    step = max(item, CHUNK - CHUNK % item)
    raw = np.empty(min(step, source.nbytes), dtype=np.uint8)
    view = raw.data  # a memoryview of the buffer
    for offset, length in source.ranges:
        for start in range(0, length, step):
            n = min(step, length - start)
            read_at(in_fd, view[:n], offset + start, source)
            yield raw[:n]


def _copy_converted(in_fd: int, source: TensorBytes, out_fd: int, out_offset: int, out_dtype: str) -> int:
    import torch

    from emo_prune.io.dtypes import torch_dtype

    src_t, dst_t = torch_dtype(source.dtype), torch_dtype(out_dtype)
    written = 0
    for piece in chunks(in_fd, source):
        converted = torch.from_numpy(piece).view(src_t).to(dst_t)  # [n / item] elements
        written += pwrite_all(out_fd, converted.view(torch.uint8).numpy().data, out_offset + written)
    return written
