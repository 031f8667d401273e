"""One writer per output folder: an exclusive, non-blocking `flock` on a lock file beside it.

    PARENT/.NAME.emo-prune-lock      holds the owner's pid (for the message); deleted on release

A second writer fails at once with the holder's pid instead of racing it to the rename. The kernel
drops the lock when its holder dies (kill -9 included), so a stale lock file never blocks anyone.
A holder deletes the file before it unlocks; a waiter that locked a file which is no longer the one
at the path (it was opened just before that deletion) lets it go and tries again. One `FolderLock`
object may be entered again while held (nested `with`): only the outermost exit releases it.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path
from types import TracebackType

from emo_prune.errors import OutputBusyError, OutputError

LOCK_TAG = ".emo-prune-lock"


def lock_path(target: Path) -> Path:
    return target.parent / f".{target.name}{LOCK_TAG}"


class FolderLock:
    """`with FolderLock(target):` only this process writes `target` (a folder or a file) until the block ends."""

    def __init__(self, target: str | Path):
        self.target = Path(target).absolute()
        self.path = lock_path(self.target)
        self._fd: int | None = None
        self._depth = 0

    def acquire(self) -> FolderLock:
        if self._fd is not None:
            self._depth += 1
            return self
        try:
            self.target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create {self.target.parent}: {exc.strerror or exc}") from exc
        for _ in range(10):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise OutputError(f"{self.path} is a symlink; refusing to follow it (remove it)") from exc
                raise OutputError(f"cannot create the lock file {self.path}: {exc.strerror or exc}") from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise OutputBusyError(
                    f"{self.target} is being written by another emo-prune process (pid {holder}); "
                    f"wait for it to finish or choose another output"
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path, follow_symlinks=False).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
                self._fd, self._depth = fd, 1
                return self
            os.close(fd)  # the holder released and deleted this file between our open and our lock
        raise OutputBusyError(f"{self.target}: could not take its lock {self.path}; another process keeps taking it")

    def release(self) -> None:
        self._depth -= 1
        if self._fd is not None and self._depth <= 0:
            try:
                self.path.unlink(missing_ok=True)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
