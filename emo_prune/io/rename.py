"""The two renames an output's last step needs, with the kernel's guarantees where it has them.

    rename_noreplace(src, dst)   dst must not exist: of two racing writers exactly one wins, the other
                                 gets FileExistsError (never a silent replacement)
    exchange(a, b)               swap two paths in one step: replacing a folder leaves no moment
                                 where the target is missing

Linux offers both as `renameat2(RENAME_NOREPLACE / RENAME_EXCHANGE)` (glibc >= 2.28; ext4, xfs,
btrfs, tmpfs). Where it is missing (another OS, an old libc, a filesystem that answers EINVAL), files
fall back to `link` + `unlink` (link never replaces) and folders to check-then-rename, which is exact
against other emo-prune processes because every target is written under its lock (`io.lock`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from pathlib import Path

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP}


def _load_renameat2():  # noqa: ANN202 (a ctypes function or None)
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        function = libc.renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_renameat2 = _load_renameat2()


def _kernel_rename(src: Path, dst: Path, flags: int) -> bool:
    """True when renameat2 did it; False when this system cannot; OSError for a real failure."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), str(dst))


def rename_noreplace(src: str | Path, dst: str | Path) -> None:
    """Move `src` to `dst`; FileExistsError when anything (a file, a folder, a symlink) is at `dst`."""
    src, dst = Path(src), Path(dst)
    if _kernel_rename(src, dst, _RENAME_NOREPLACE):
        return
    if src.is_dir() and not src.is_symlink():
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst))
        os.rename(src, dst)
        return
    os.link(src, dst, follow_symlinks=False)  # EEXIST when dst exists: link never replaces
    os.unlink(src)


def exchange(a: str | Path, b: str | Path) -> bool:
    """Swap `a` and `b` atomically; False (nothing moved) where the system cannot."""
    return _kernel_rename(Path(a), Path(b), _RENAME_EXCHANGE)
