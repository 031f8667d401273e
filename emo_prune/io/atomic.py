"""Atomic outputs: a folder or a file that appears complete or not at all.

A folder is written inside `AtomicFolder`: a hidden temporary folder beside the target, holding a
marker file while it is written (a sharded checkpoint's shards are `*.partial` until then, see
`emo_prune.io.shards`); then the ownership marker lists every file (`emo_prune.io.ownership`), and the
folder is renamed into place. One process at a time writes a target (`emo_prune.io.lock`). A kill
mid-way leaves only the hidden, marked folder (no config, no index, no `.safetensors` name), and the
next `AtomicFolder` for the same target deletes it once its owner process is gone. A single file is
written by `atomic_write`: a temporary file beside it, renamed over it. Every temporary name is created
exclusively (mkdtemp / mkstemp / O_EXCL), so a symlink planted where a temporary file will go is never
followed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from emo_prune import events
from emo_prune.errors import OutputError
from emo_prune.io.lock import FolderLock
from emo_prune.io.ownership import TMP_TAG, owned_contents, read_owner_marker, remove_owned, write_owner_marker

PARTIAL_MARKER = ".emo-prune-partial"
OLD_TAG = "old-"  # after TMP_TAG: a replaced output waiting for deletion


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
            events.warn(f"the replaced output {old} held files emo-prune did not write; it was left in place")


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
