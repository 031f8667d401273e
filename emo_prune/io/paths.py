"""Containment: a path read from a file (an index entry, a side file, a recipe's build name) stays in its folder.

`contained_path(root, rel, what)` is the one check every such path goes through. Refused: an absolute
path, a `..` component, an empty name, and any name whose resolved target (symlinks followed) lies
outside `root`. One exception, so that models read straight from the Hugging Face cache keep working:
inside a snapshot, files are symlinks into the repository's blob store,

    HF_HOME/hub/models--org--name/snapshots/<revision>/model.safetensors -> ../../blobs/<sha256>

so for a `root` inside `models--*/snapshots/<revision>/`, targets inside `models--*/blobs/` count as inside.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath

from emo_prune.errors import UnsafePathError


def _hf_blobs(root: Path) -> Path | None:
    """`models--org--name/blobs` when `root` (resolved) is a snapshot folder of the HF cache, else None."""
    for snapshot in (root, *root.parents):
        repo = snapshot.parent.parent
        if snapshot.parent.name == "snapshots" and repo.name.startswith(("models--", "datasets--")):
            return repo / "blobs"
    return None


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def inside(root: str | Path, target: str | Path) -> bool:
    """True when `target` (resolved) lies inside `root` (resolved) or, for an HF snapshot, in its blob store."""
    root, target = Path(root).resolve(), Path(target).resolve()
    blobs = _hf_blobs(root)
    return _within(target, root) or (blobs is not None and _within(target, blobs))


def contained_path(root: str | Path, rel: object, what: str) -> Path:
    """`root / rel`, after checking that `rel` names something inside `root` (see the module docstring).

    `what` names the entry in the message, e.g. "shard 'x' named in DIR/model.safetensors.index.json".
    """
    if not isinstance(rel, str) or not rel.strip() or "\0" in rel:
        raise UnsafePathError(f"{what}: {rel!r} is not a file name")
    pure = PurePosixPath(rel)
    if pure.is_absolute() or PureWindowsPath(rel).is_absolute() or PureWindowsPath(rel).drive:
        raise UnsafePathError(f"{what}: {rel!r} is an absolute path; only names inside {root} are allowed")
    if ".." in pure.parts or ".." in PureWindowsPath(rel).parts:
        raise UnsafePathError(f"{what}: {rel!r} climbs out of {root} with '..'; only names inside it are allowed")
    path = Path(root) / rel
    if not inside(root, path):
        raise UnsafePathError(f"{what}: {rel!r} is a symlink to {path.resolve()}, outside {root}; refusing to follow it")
    return path
