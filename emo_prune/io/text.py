"""Text files a user names (a recipe, a prompt, calibration text): UTF-8 from a regular file, or one error.

`read_text(path, error, what)` is the one reader: a missing file, a folder, a FIFO or device (whose read
would block or never end), and bytes that are not UTF-8 are each refused with `error` naming the file,
and for bad bytes the first one's offset, so a user can find it (`cmp`, a hex editor).
"""

from __future__ import annotations

import stat
from pathlib import Path

from emo_prune.errors import EmoPruneError


def read_text(path: str | Path, error: type[EmoPruneError], what: str) -> str:
    """The UTF-8 text of `path`; `error` ("WHAT PATH ...", one line) when it cannot be that."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise error(f"{what} {path} is a folder; give a file")
        if not stat.S_ISREG(mode):
            raise error(f"{what} {path} is not a regular file (a FIFO, socket or device); give a file")
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(
            f"{what} {path} is not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start} ({exc.reason}); save it as UTF-8"
        ) from None
