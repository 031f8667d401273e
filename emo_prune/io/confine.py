"""Writes inside an output folder go through real folders only.

A run folder is filled over many steps and many runs (`emo-prune run` resumes), so between two runs
anyone may replace `RUN/.steps/`, `RUN/plans/` or `RUN/verify/` by a symlink to a folder of theirs; a
resumed run would then write its stamps and plans there. Inside a confined folder, every component
between the folder and the file being written must be a real directory (never a symlink, never a file
or a FIFO), created one level at a time by us when missing:

    with confined(run_folder):          # the run's whole life
        atomic_write(run_folder / "plans" / "25pct.json", ...)   # `plans/` checked (and made) first

`io.atomic` calls `check_chain` before every file and folder it writes, so builds, plans, profiles,
reports, pool indexes and GGUF files all obey it without knowing they run inside a run folder. Paths
outside every confined folder (a user's `--out a/b/c.json`) are the user's to name; the user's own
folders may well be symlinks there.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path

from emo_prune.errors import OutputError

_ROOTS: ContextVar[tuple[Path, ...]] = ContextVar("emo_prune_confined_roots", default=())


@contextlib.contextmanager
def confined(root: str | Path) -> Iterator[Path]:
    """Within the block, writes under `root` go through real folders only (see the module docstring)."""
    root = Path(root).absolute()
    token = _ROOTS.set((*_ROOTS.get(), root))
    try:
        yield root
    finally:
        _ROOTS.reset(token)


def _root_of(path: Path) -> Path | None:
    for root in reversed(_ROOTS.get()):
        if path != root and root in path.parents:
            return root
    return None


def real_folder(path: Path, root: Path, *, create: bool = True) -> Path:
    """Make sure each folder from `root` (excluded) down to `path` is a real directory, creating the
    missing ones one level at a time (`create=False`: stop at the first missing one); OutputError
    naming the first that is a symlink or not a folder."""
    path, root = Path(path).absolute(), Path(root).absolute()
    current = root
    for part in path.relative_to(root).parts:
        current = current / part
        try:
            if create:
                os.mkdir(current, 0o777)  # the umask applies
        except FileExistsError:
            pass
        except OSError as exc:
            raise OutputError(f"cannot create {current}: {exc.strerror or exc}") from exc
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            return path  # create=False: nothing further down exists yet
        except OSError as exc:
            raise OutputError(f"cannot use {current}: {exc.strerror or exc}") from exc
        if stat.S_ISLNK(info.st_mode):
            raise OutputError(f"{current} is a symlink inside the output folder {root}; refusing to write through it (remove it)")
        if not stat.S_ISDIR(info.st_mode):
            raise OutputError(f"{current} inside the output folder {root} is not a folder; refusing to write into it (remove it)")
    return path


def check_chain(path: str | Path) -> None:
    """Before writing `path`: when it lies in a confined folder, its parent folders are real (made when missing)."""
    path = Path(path).absolute()
    root = _root_of(path)
    if root is not None:
        real_folder(path.parent, root)
