"""Atomic outputs: a folder or a file that appears complete or not at all, and never replaces by surprise.

A folder is written inside `AtomicFolder`: a hidden temporary folder beside the target, holding a
marker file while it is written (a sharded checkpoint's shards are `*.partial` until then, see
`emo_prune.io.shards`); then the ownership marker lists every file (`emo_prune.io.ownership`), and the
folder is renamed into place. A single file is written by `atomic_write`: a temporary file beside it,
renamed onto it. `write_output` is the whole rule for a file a command writes (a plan, a profile, a
pool index, results, a GGUF file): under the target's lock (`emo_prune.io.lock`), an existing target
is refused without `--overwrite`, and with it replaced only when it is emo-prune's own kind of file;
the last rename refuses a target that appeared meanwhile (`io.rename.rename_noreplace`), so a race
ends with one winner and one clear error.

Temporary names are `.NAME.emo-prune-tmp-<pid>.<random>`, created exclusively (mkdtemp / mkstemp /
O_EXCL), so a symlink planted where one will go is never followed; the next writer of the same target
deletes those whose process is gone (a kill -9 leaves no litter for good). A temporary folder found on
disk is never renamed into a target: only the process that made it (holding its path in memory)
promotes it. Outputs get the modes the umask gives (0666 / 0777 less the umask), as any file would.
Inside a run folder every parent is checked to be a real folder first (`emo_prune.io.confine`).
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
from emo_prune.errors import EmoPruneError, OutputError
from emo_prune.io.confine import check_chain
from emo_prune.io.lock import FolderLock
from emo_prune.io.ownership import TMP_TAG, owned_contents, read_owner_marker, remove_owned, write_owner_marker
from emo_prune.io.rename import exchange, rename_noreplace

PARTIAL_MARKER = ".emo-prune-partial"
OLD_TAG = "old-"  # after TMP_TAG: a replaced output waiting for deletion


def _umask() -> int:
    mask = os.umask(0o022)  # the only way to read it is to set it; put back at once
    os.umask(mask)
    return mask


def file_mode() -> int:
    """What open() would give a new file in this process now (mkstemp's 0600 is not what users expect)."""
    return 0o666 & ~_umask()


def folder_mode() -> int:
    """What mkdir would give a new folder now (mkdtemp's 0700 made every build private)."""
    return 0o777 & ~_umask()


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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _temp_prefix(target: Path) -> str:
    return f".{target.name}{TMP_TAG}"


def _dead_owner(name: str, prefix: str) -> bool:
    """A temporary name `prefix<pid>.<...>` whose process is gone (old-<pid> for a replaced folder)."""
    pid = name[len(prefix) :].removeprefix(OLD_TAG).split(".")[0]
    return pid.isdigit() and not _pid_alive(int(pid))


def clean_stale_files(target: str | Path) -> list[Path]:
    """Delete the temporary FILES of `target` left by killed writers (regular files whose pid is gone)."""
    target = Path(target).absolute()
    prefix, removed = _temp_prefix(target), []
    for path in target.parent.glob(f"{prefix}*"):
        if path.is_file() and not path.is_symlink() and _dead_owner(path.name, prefix):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def temp_file(target: str | Path, tag: str = "") -> Path:
    """A new empty file beside `target`, named `.NAME.emo-prune-tmp-<pid>.<tag>...tmp` (O_EXCL, umask mode)."""
    target = Path(target).absolute()
    check_chain(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f"{_temp_prefix(target)}{os.getpid()}.{tag}", suffix=".tmp")
        os.fchmod(fd, file_mode())
        os.close(fd)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
    return Path(tmp)


def commit_file(tmp: Path, target: str | Path, *, replace: bool) -> Path:
    """Rename the finished `tmp` onto `target`: over an existing one only with `replace`, else a target
    that appeared meanwhile (another writer) is an OutputError and `tmp` is left for the caller to delete."""
    target = Path(target)
    try:
        if replace:
            os.replace(tmp, target)
        else:
            rename_noreplace(tmp, target)
    except FileExistsError:
        raise OutputError(
            f"{target} appeared while emo-prune was writing it (another process wrote it); pass --overwrite to replace it"
        ) from None
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
    _fsync_dir(target.absolute().parent)
    return target


def _refuse_special(path: Path) -> None:
    if path.is_symlink():
        raise OutputError(f"{path} is a symlink; refusing to write through or replace it (remove it or choose another path)")
    if os.path.lexists(path) and not path.is_file():
        raise OutputError(f"{path} exists and is not a regular file; refusing to replace it")


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object], *, replace: bool = True) -> Path:
    """Write a file atomically: `write(f)` fills a fresh temporary file beside `path`, renamed onto it.

    `replace=False` refuses a `path` that exists when the rename comes (see `commit_file`). A symlink,
    folder or special file at `path` is never replaced; an unwritable folder is an OutputError.
    """
    path = Path(path)
    _refuse_special(path)
    clean_stale_files(path)
    tmp = temp_file(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        return commit_file(tmp, path, replace=replace)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str, *, replace: bool = True) -> Path:
    """`atomic_write` of a UTF-8 text."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")), replace=replace)


Recognise = Callable[[Path], bool]


def check_output_file(
    path: str | Path, *, overwrite: bool, recognise: Recognise | None, what: str, error: type[EmoPruneError] = OutputError
) -> Path:
    """Refuse an unusable output file before any work: a folder, a symlink or special file, a file that
    is not `what` emo-prune writes (`recognise`; never replaced, so --overwrite would not help), and an
    existing one without `overwrite`. `what` reads "a plan file", "an emo-prune profile", ..."""
    path = Path(path)
    try:
        if path.is_dir() and not path.is_symlink():
            raise error(f"--out {path} is a folder; give a file path for {what}")
        _refuse_special(path)
        if path.exists():
            if recognise is None or not recognise(path):
                raise error(f"{path} exists and is not {what}; refusing to replace it even with --overwrite")
            if not overwrite:
                raise error(f"{path} exists; pass --overwrite to replace it")
    except OSError as exc:  # a name too long, a folder we may not look into
        raise error(f"cannot use {path} as the output: {exc.strerror or exc}") from None
    check_writable(path)
    return path


def write_output(
    path: str | Path,
    write: Callable[[BinaryIO], object],
    *,
    overwrite: bool,
    recognise: Recognise | None,
    what: str,
    error: type[EmoPruneError] = OutputError,
    lock: FolderLock | None = None,
) -> Path:
    """The rule for every file a command writes: locked, checked again under the lock, written atomically,
    never replacing a target that exists (or appears) without `overwrite`, nor a stranger's file with it.

    `lock`: the target's lock when the caller took it before its long work (so a second writer fails at
    once, not after minutes of profiling); the same object is entered again here."""
    path = Path(path)
    with lock or FolderLock(path):
        check_output_file(path, overwrite=overwrite, recognise=recognise, what=what, error=error)
        return atomic_write(path, write, replace=overwrite)


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
        """Delete temporary folders of this target left by killed runs (owner process gone).

        Never renames one into the target: a folder found on disk proves nothing about who made it (its
        pid and markers can be forged), so only the live process holding its path in memory promotes it.
        A replacement killed between its two renames (where the system cannot swap them in one step)
        therefore loses the previous output, which the user had asked to replace."""
        removed = []
        for path in self.target.parent.glob(f"{self.prefix}*"):
            if path.is_symlink() or not path.is_dir() or not _dead_owner(path.name, self.prefix):
                continue
            if (path / PARTIAL_MARKER).is_file():  # a folder being written when its writer died
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
            elif read_owner_marker(path) is not None:  # finished, or replaced, when its writer died
                try:
                    remove_owned(path, owned_contents(path))
                    removed.append(path)
                except OutputError:
                    pass
        return removed

    def __enter__(self) -> Path:
        check_chain(self.target)
        self.lock.acquire()
        try:
            self.clean_stale()
            clean_stale_files(self.target)
            self._check()  # again, now that no other emo-prune process can change the target
            self.tmp = Path(tempfile.mkdtemp(prefix=f"{self.prefix}{os.getpid()}.", dir=self.target.parent))
            os.chmod(self.tmp, folder_mode())
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
        except FileExistsError:
            raise OutputError(
                f"{self.target} appeared while emo-prune was writing it (another process made it); pass --overwrite to replace it"
            ) from None
        except OSError as error:
            raise OutputError(f"cannot move the finished output into {self.target}: {error.strerror or error}") from error
        finally:
            self._abandon()

    def _commit(self) -> None:
        assert self.tmp is not None
        (self.tmp / PARTIAL_MARKER).unlink()
        write_owner_marker(self.tmp, self.kind)
        _fsync_dir(self.tmp)
        if not self.overwrite or not self.target.exists():
            rename_noreplace(self.tmp, self.target)  # a target made meanwhile is never replaced
            self.tmp = None
            _fsync_dir(self.target.parent)
            return
        self._check()  # still a folder emo-prune owns, right before it goes
        old_files = owned_contents(self.target) if any(self.target.iterdir()) else []
        if exchange(self.tmp, self.target):  # one step: the target is never missing
            old = self.tmp
        else:
            old = Path(tempfile.mkdtemp(prefix=f"{self.prefix}{OLD_TAG}{os.getpid()}.", dir=self.target.parent))
            os.replace(self.target, old)  # onto the empty folder mkdtemp made
            try:
                os.replace(self.tmp, self.target)
            except OSError:
                os.replace(old, self.target)  # put the previous output back
                raise
        self.tmp = None
        _fsync_dir(self.target.parent)
        old_files = [old / p.relative_to(self.target) for p in old_files]
        if not remove_owned(old, old_files):
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
