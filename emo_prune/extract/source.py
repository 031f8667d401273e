"""Where each output tensor's bytes come from: byte ranges of one source shard, copied without a detour.

Every tensor an extraction writes is a concatenation of whole rows of one source tensor: a copied
tensor is one range, a kept expert's tensor is one range, a fused [E, ...] tensor or a router [E, H]
sliced to the kept experts is one range per contiguous run of kept ids. So an output tensor is
described by (shard file, [(absolute offset, length), ...]) from the safetensors headers alone.

Copies go through the kernel (`os.sendfile`, file to file): no weight byte enters Python memory, so
peak RSS stays at the interpreter's own, whatever the model size. A dtype change (--dtype) reads
CHUNK-sized pieces with `os.pread`, converts them with torch (imported only then) and writes them, so memory stays at about
3 x CHUNK. Why not `safe_open`: it maps the whole shard, and every page touched stays resident (and is
counted in RSS) until the shard is closed, i.e. up to a whole shard's worth per shard.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from emo_prune.errors import CheckpointError, OutputError
from emo_prune.io.dtypes import TAG_BYTES
from emo_prune.io.shards import pwrite_all

CHUNK = 32 * 1024 * 1024  # bytes read per dtype-conversion step; 3 x CHUNK is the extra memory
_SENDFILE_MAX = 1 << 30  # one sendfile call moves at most ~2 GiB on Linux; stay well below


@dataclass(frozen=True)
class ByteSource:
    path: str  # source shard file
    ranges: tuple[tuple[int, int], ...]  # (absolute file offset, length), concatenated in order
    dtype: str  # safetensors tag of the source bytes
    tensor: str = ""  # the source tensor's name, for messages

    @property
    def nbytes(self) -> int:
        return sum(length for _, length in self.ranges)


@contextmanager
def opened(source: ByteSource) -> Iterator[int]:
    """A read-only descriptor of the source shard."""
    try:
        in_fd = os.open(source.path, os.O_RDONLY)
    except OSError as exc:
        raise CheckpointError(f"cannot open {source.path}: {exc.strerror or exc}") from exc
    try:
        yield in_fd
    finally:
        os.close(in_fd)


def copy_into(source: ByteSource, out_fd: int, out_offset: int, out_dtype: str) -> int:
    """Write `source` into `out_fd` at `out_offset`, converted to `out_dtype`; returns bytes written."""
    with opened(source) as in_fd:
        try:
            if out_dtype == source.dtype:
                return _copy_same(in_fd, source, out_fd, out_offset)
            return _copy_converted(in_fd, source, out_fd, out_offset, out_dtype)
        except OSError as exc:
            raise OutputError(f"writing data read from {source.path} failed: {exc.strerror or exc}") from exc


def _copy_same(in_fd: int, source: ByteSource, out_fd: int, out_offset: int) -> int:
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
                n = _copy_buffered(in_fd, offset + done, min(length - done, CHUNK), out_fd, out_offset + written + done)
            if n == 0:
                raise CheckpointError(f"{source.path} ended early (truncated while being read?)")
            done += n
        written += length
    return written


def _read_into(in_fd: int, buffer: memoryview, offset: int) -> None:
    done = 0
    while done < len(buffer):
        n = os.preadv(in_fd, [buffer[done:]], offset + done)
        if n == 0:
            raise CheckpointError("a source shard ended early (truncated while being read?)")
        done += n


def _copy_buffered(in_fd: int, offset: int, length: int, out_fd: int, out_offset: int) -> int:
    buffer = memoryview(bytearray(length))
    _read_into(in_fd, buffer, offset)
    return pwrite_all(out_fd, buffer, out_offset)


def chunks(in_fd: int, source: ByteSource) -> Iterator[np.ndarray]:
    """`source`'s bytes, CHUNK at a time in whole elements: uint8 views of ONE reused buffer (use each before the next)."""
    item = TAG_BYTES[source.dtype]
    step = max(item, CHUNK - CHUNK % item)
    raw = np.empty(min(step, source.nbytes), dtype=np.uint8)
    view = raw.data  # a memoryview of the buffer
    for offset, length in source.ranges:
        for start in range(0, length, step):
            n = min(step, length - start)
            _read_into(in_fd, view[:n], offset + start)
            yield raw[:n]


def _copy_converted(in_fd: int, source: ByteSource, out_fd: int, out_offset: int, out_dtype: str) -> int:
    import torch

    from emo_prune.io.dtypes import torch_dtype

    src_t, dst_t = torch_dtype(source.dtype), torch_dtype(out_dtype)
    written = 0
    for piece in chunks(in_fd, source):
        converted = torch.from_numpy(piece).view(src_t).to(dst_t)  # [n / item] elements
        written += pwrite_all(out_fd, converted.view(torch.uint8).numpy().data, out_offset + written)
    return written
