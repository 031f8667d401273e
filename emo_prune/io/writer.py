"""Atomic, size-capped safetensors output: a folder that appears complete or not at all.

Every output tensor's name, dtype and shape are known before any byte is written (they come from
source headers and a plan), so shard layouts, headers and offsets are fixed up front and each tensor
streams straight into its slot: nothing is buffered beyond what the caller holds. Shard file layout
(the safetensors format):
    u64 little-endian N | N bytes of header JSON, space-padded to a multiple of 8 | data block
Inside a shard, tensors are stored by descending element size (then in arrival order), so every
tensor starts at an offset aligned to its element size, as safetensors' own writer does.

A write happens inside `AtomicFolder`: a hidden temporary folder beside the target, holding a marker
file and shards named `*.partial` until every byte is written; then shards get their final names
(`model-0000i-of-0000N.safetensors`), the index is written last, the ownership marker lists every file
(`emo_prune.io.ownership`), and the folder is renamed into place. One process at a time writes a
target (`emo_prune.io.lock`). A kill mid-way leaves only the hidden, marked folder (no config, no
index, no `.safetensors` name), and the next `AtomicFolder` for the same target deletes it once its
owner process is gone. Every temporary name is created exclusively (mkdtemp / mkstemp / O_EXCL), so a
symlink planted where a temporary file will go is never followed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO

from emo_prune.console import out
from emo_prune.errors import OutputError
from emo_prune.io.checkpoint import INDEX_FILE
from emo_prune.io.lock import FolderLock
from emo_prune.io.ownership import TMP_TAG, owned_contents, read_owner_marker, remove_owned, write_owner_marker
from emo_prune.dtypes import TAG_BYTES, tag_of

if TYPE_CHECKING:  # torch is imported by write_tensor only: writing bytes needs none
    import torch

PARTIAL_MARKER = ".emo-prune-partial"
OLD_TAG = "old-"  # after TMP_TAG: a replaced output waiting for deletion

if TYPE_CHECKING:
    import torch

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def parse_size(value: str | int) -> int:
    """'5GB' -> 5_000_000_000, '512MiB' -> 536870912, 1000 -> 1000 (decimal units, as transformers)."""
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.match(value)
        if not match:
            raise OutputError(f"cannot read size {value!r}; write it like 5GB, 500MB or 2GiB")
        unit = (match.group(2) or "").lower().removesuffix("b")
        size = int(float(match.group(1)) * _UNITS[unit])
    if size <= 0:
        raise OutputError(f"size {value!r} must be positive")
    return size


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
        import torch

        data = tensor.detach().contiguous().cpu().reshape(-1).view(torch.uint8).numpy()
        self.write_from(name, lambda fd, offset, nbytes: pwrite_all(fd, memoryview(data), offset))

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


def write_new(path: Path, data: bytes | str) -> None:
    """Create a small file inside a folder that is itself being written atomically; never replaces anything."""
    with Path(path).open("xb") as f:  # O_EXCL: fails on anything already there, a symlink included
        f.write(data.encode() if isinstance(data, str) else data)


def write_text(path: Path, text: str) -> None:
    write_new(path, text)


def check_writable(path: str | Path) -> None:
    """OutputError now, before any work, when the folder `path` goes into cannot be created or written."""
    probe = Path(path).absolute().parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {path}: {probe} is not a writable folder")


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Write a file atomically: `write(f)` fills a fresh temporary file beside `path`, renamed over it.

    The temporary file is made by mkstemp (O_EXCL, random name), so nothing planted is followed; an
    unwritable folder or a folder in the way is an OutputError.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}{TMP_TAG}", suffix=".tmp")
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """`atomic_write` of a UTF-8 text."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _overlaps(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents


class AtomicFolder:
    """`with AtomicFolder(target) as tmp:` write into `tmp`; on success it becomes `target`, else vanishes.

    Refuses (OutputError, before creating anything) a target that exists without `overwrite`, a
    target that overlaps any `protect` path (equal, inside it, or containing it), a symlink, and even
    with `overwrite` a target that is not emo-prune's or holds files it did not write
    (`ownership.owned_contents`). The checks run again under the target's lock. With `overwrite`, the
    old folder is moved aside and only its listed files are deleted, after the new one is in place.
    """

    def __init__(self, target: str | Path, *, overwrite: bool = False, protect: Iterable[str | Path] = (), kind: str = "build"):
        self.target = Path(target).absolute()
        self.overwrite = overwrite
        self.kind = kind
        self.prefix = f".{self.target.name}{TMP_TAG}"
        self.tmp: Path | None = None
        self.lock = FolderLock(self.target)  # `with folder.lock:` takes it early, e.g. before long checks
        for path in protect:
            path = Path(path).resolve()
            if _overlaps(self.target.resolve(), path):
                raise OutputError(f"output folder {self.target} overlaps the input {path}; choose a folder outside it")
        self._check()

    def _check(self) -> None:
        if self.target.is_symlink():
            raise OutputError(f"{self.target} is a symlink; refusing to write through or replace it")
        if self.target.exists():
            if not self.overwrite:
                raise OutputError(f"{self.target} already exists; pass --overwrite to replace it")
            if not self.target.is_dir():
                raise OutputError(f"{self.target} exists and is not a folder; refusing to replace it")
            if any(self.target.iterdir()):
                owned_contents(self.target)  # raises unless emo-prune wrote all of it

    def clean_stale(self) -> list[Path]:
        """Delete temporary folders of this target left by killed runs (owner process gone); a previous
        output moved aside by a replacement that died before the new one was renamed in goes back."""
        removed = []
        for path in self.target.parent.glob(f"{self.prefix}*"):
            pid = path.name[len(self.prefix) :].removeprefix(OLD_TAG).split(".")[0]
            if path.is_symlink() or not path.is_dir() or not pid.isdigit() or _pid_alive(int(pid)):
                continue
            if (path / PARTIAL_MARKER).is_file():  # a folder being written when its writer died
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
            elif read_owner_marker(path) is not None:  # a kill between the renames of a replacement
                replaced = path.name[len(self.prefix) :].startswith(OLD_TAG)
                if replaced and not self.target.exists():
                    os.replace(path, self.target)  # the new output never arrived: put the previous one back
                    continue
                try:
                    remove_owned(path, owned_contents(path))
                    removed.append(path)
                except OutputError:
                    pass
        return removed

    def __enter__(self) -> Path:
        self.lock.acquire()
        try:
            self.clean_stale()
            self._check()  # again, now that no other emo-prune process can change the target
            self.tmp = Path(tempfile.mkdtemp(prefix=f"{self.prefix}{os.getpid()}.", dir=self.target.parent))
            write_new(self.tmp / PARTIAL_MARKER, f"emo-prune is writing {self.target} (pid {os.getpid()})\n")
        except OSError as exc:
            self._abandon()
            raise OutputError(f"cannot create a temporary folder beside {self.target}: {exc.strerror or exc}") from exc
        except BaseException:
            self._abandon()
            raise
        return self.tmp

    def _abandon(self) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
        self.lock.release()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is not None:
            self._abandon()
            return
        try:
            self._commit()
        except OSError as error:
            raise OutputError(f"cannot move the finished output into {self.target}: {error.strerror or error}") from error
        finally:
            self._abandon()

    def _commit(self) -> None:
        assert self.tmp is not None
        (self.tmp / PARTIAL_MARKER).unlink()
        write_owner_marker(self.tmp, self.kind)
        _fsync_dir(self.tmp)
        old, old_files = None, []
        if self.target.exists():
            old_files = owned_contents(self.target) if any(self.target.iterdir()) else []
            old = Path(tempfile.mkdtemp(prefix=f"{self.prefix}{OLD_TAG}{os.getpid()}.", dir=self.target.parent))
            os.replace(self.target, old)  # onto the empty folder mkdtemp made
            old_files = [old / p.relative_to(self.target) for p in old_files]
        try:
            os.replace(self.tmp, self.target)
        except OSError:
            if old is not None:
                os.replace(old, self.target)  # put the previous output back
            raise
        self.tmp = None
        _fsync_dir(self.target.parent)
        if old is not None and not remove_owned(old, old_files):
            out.warn(f"the replaced output {old} held files emo-prune did not write; it was left in place")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
