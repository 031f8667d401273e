"""Which folders are emo-prune's: a marker file that records what emo-prune wrote there.

    FOLDER/.emo-prune-owner.json
      {"written_by": "emo-prune", "format": 1, "kind": "build" | "run" | ...,
       "files": ["config.json", "model-00001-of-00001.safetensors", ...],   # relative, sorted
       "signature": sha256 over the fields above (canonical JSON)}

`--overwrite` may replace a folder only when its marker is intact (the signature matches) and the
folder holds nothing but the files it lists and emo-prune's own temporary files; it then deletes only
those. A file named `emo_prune.json` proves nothing: any downloaded build carries one. The signature
is a checksum, not a secret: it tells a marker that was hand-edited or garbled, not a forger.
The marker holds no path and no time, so identical builds stay byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from emo_prune.errors import OutputError

OWNER_FILE = ".emo-prune-owner.json"
TOOL = "emo-prune"
FORMAT = 1
#: every temporary name emo-prune creates contains this (files, folders, locks)
TMP_TAG = ".emo-prune-tmp-"


def _signature(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _files(folder: Path) -> list[str]:
    """Relative paths of the regular files under `folder` (symlinks and specials excluded), sorted."""
    found = []
    for dirpath, _dirs, names in os.walk(folder):
        for name in names:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink() and path != folder / OWNER_FILE:
                found.append(path.relative_to(folder).as_posix())
    return sorted(found)


def write_owner_marker(folder: str | Path, kind: str) -> Path:
    """Record every file now in `folder` as emo-prune's (call when the folder's content is final)."""
    folder = Path(folder)
    body = {"written_by": TOOL, "format": FORMAT, "kind": kind, "files": _files(folder)}
    marker = folder / OWNER_FILE
    marker.unlink(missing_ok=True)
    with marker.open("x", encoding="utf-8") as f:  # "x": O_EXCL, never through a planted symlink
        f.write(json.dumps({**body, "signature": _signature(body)}, indent=1) + "\n")
    return marker


def read_owner_marker(folder: str | Path) -> dict | None:
    """The marker's fields when it is present and intact, else None."""
    marker = Path(folder) / OWNER_FILE
    if marker.is_symlink() or not marker.is_file():
        return None
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("written_by") != TOOL or not isinstance(data.get("files"), list):
        return None
    body = {k: v for k, v in data.items() if k != "signature"}
    return body if data.get("signature") == _signature(body) else None


def is_temporary(name: str) -> bool:
    return TMP_TAG in name


def owned_contents(folder: str | Path) -> list[Path]:
    """The files of `folder` emo-prune may delete (listed ones, its temp files, the marker).

    OutputError when the folder is not emo-prune's or holds anything else, naming the first stranger.
    Only files found IN the folder are returned, so a marker listing "../x" can never reach outside it.
    """
    folder = Path(folder)
    marker = read_owner_marker(folder)
    refuse = f"refusing to replace {folder} even with --overwrite"
    if marker is None:
        raise OutputError(f"{refuse}: it has no intact {OWNER_FILE}, so emo-prune did not write it (remove it yourself)")
    listed = set(marker["files"])
    removable = []
    for dirpath, dirs, names in os.walk(folder):
        for name in [*names, *(d for d in dirs if (Path(dirpath) / d).is_symlink())]:
            path = Path(dirpath) / name
            rel = path.relative_to(folder).as_posix()
            if name == OWNER_FILE and path.parent == folder:
                continue
            if path.is_symlink() or not path.is_file() or not (rel in listed or is_temporary(name)):
                raise OutputError(f"{refuse}: it holds {rel}, which emo-prune did not write there (move it away first)")
            removable.append(path)
    return [*removable, folder / OWNER_FILE]


def remove_owned(folder: Path, files: list[Path]) -> bool:
    """Delete `files`, then the folders they leave empty, then `folder`; False if something else remained."""
    for path in files:
        path.unlink(missing_ok=True)
    for dirpath, _dirs, _names in sorted(os.walk(folder), key=lambda w: -len(Path(w[0]).parts)):
        try:
            os.rmdir(dirpath)
        except OSError:
            return False
    return True


def claim_folder(folder: str | Path, kind: str) -> Path:
    """A folder emo-prune fills over several steps (a run folder): create it, or adopt an empty one, or
    reuse one emo-prune made as a `kind` folder; anything else is refused. Call under its lock."""
    folder = Path(folder)
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise OutputError(f"{folder} exists and is not a folder; choose another output folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not any(folder.iterdir()):
            write_owner_marker(folder, kind)
    except OSError as exc:
        raise OutputError(f"cannot write into {folder}: {exc.strerror or exc}") from exc
    marker = read_owner_marker(folder)
    if marker is None or marker.get("kind") != kind:
        raise OutputError(
            f"{folder} is not empty and is not a {kind} folder emo-prune made (no intact {OWNER_FILE}); "
            f"refusing to write into it: choose a new or empty folder"
        )
    return folder
