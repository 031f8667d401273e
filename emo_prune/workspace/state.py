"""A workspace: a folder that remembers its model and what was made in it, so commands need no names.

    FOLDER/emo-prune.json      {"format": 1, "model": "builtin:emo-small",
                                "profiles": [{"path": "emo-small-code.profile.safetensors", "domains": ["code"]}],
                                "plans":    [{"path": "code12.json", "domains": ["code"]}],
                                "builds":   [{"path": "emo-small-code-12.5pct", "source": "builtin:emo-small",
                                              "domains": ["code"]}]}

`emo-prune init MODEL` writes it; so does the first command given a MODEL whose output lands in the
folder. A folder without the file but with exactly one recipe (`*.yaml` naming a `model:`) is a
workspace too: the recipe's model, nothing recorded yet. Entries are appended in the order they were
made, so "newest" is the last one whose file is still there. Paths are relative to the folder.

The file is untrusted input, like a plan: at most MAX_BYTES, every field typed (pydantic, extra
fields refused), every path relative and inside the folder (after symlinks), the file itself a
regular file (never a symlink). It is written as every output is (`io.atomic.write_output`: locked,
atomic, only over emo-prune's own workspace file); a read-modify-write holds the lock throughout.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from emo_prune.errors import WorkspaceError
from emo_prune.io.lock import FolderLock

STATE_FILE = "emo-prune.json"
FORMAT = 1
MAX_BYTES = 256 * 1024  # ~2000 entries; a larger file is not ours
MAX_ENTRIES = 1000  # per list: older entries are dropped first when a new one is recorded

Text = Annotated[StrictStr, Field(min_length=1, max_length=4096)]


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    path: Text
    domains: tuple[Annotated[StrictStr, Field(min_length=1, max_length=64)], ...] = Field(default=(), max_length=64)


class ProfileEntry(_Entry):
    """A profile file made here, and the domains it covers."""


class PlanEntry(_Entry):
    """A plan file made here (`select`), and the domains its experts were kept for."""


class BuildEntry(_Entry):
    """A build folder made here, and the model it was cut from (a MODEL as typed: builtin:NAME, a path)."""

    source: Text


class State(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    format: StrictInt
    model: Text
    profiles: tuple[ProfileEntry, ...] = Field(default=(), max_length=MAX_ENTRIES)
    plans: tuple[PlanEntry, ...] = Field(default=(), max_length=MAX_ENTRIES)  # absent in files before plans were recorded
    builds: tuple[BuildEntry, ...] = Field(default=(), max_length=MAX_ENTRIES)


@dataclass(frozen=True)
class Workspace:
    """A folder's state: `recorded` is False when only a recipe makes it a workspace (no file yet)."""

    folder: Path
    state: State
    recorded: bool
    origin: str  # where the model came from, for messages: "emo-prune.json", "recipe edge.yaml"

    @property
    def model(self) -> str:
        return self.state.model

    def resolve(self, relative: str) -> Path:
        return self.folder / relative

    def existing_profiles(self) -> list[ProfileEntry]:
        return [p for p in self.state.profiles if self.resolve(p.path).is_file()]

    def existing_builds(self) -> list[BuildEntry]:
        return [b for b in self.state.builds if self.resolve(b.path).is_dir()]

    def newest_profile(self, domains: tuple[str, ...]) -> ProfileEntry | None:
        """The newest profile still here that covers every one of `domains` (any profile when none)."""
        for entry in reversed(self.existing_profiles()):
            if set(domains) <= set(entry.domains):
                return entry
        return None

    def newest_build(self) -> BuildEntry | None:
        builds = self.existing_builds()
        return builds[-1] if builds else None


def state_path(folder: str | Path) -> Path:
    return Path(folder) / STATE_FILE


def _inside(folder: Path, relative: str, where: str) -> None:
    """Refuse a recorded path that is absolute, climbs out with `..`, or leaves the folder through a symlink."""
    pure = PurePosixPath(relative)
    if pure.is_absolute() or ".." in pure.parts or "\\" in relative or "\x00" in relative:
        raise WorkspaceError(
            f"{where}: {relative!r} leaves the workspace folder; entries name paths inside it (delete the entry or the file)"
        )
    real_root, real = folder.resolve(), (folder / relative).resolve()
    if real != real_root and real_root not in real.parents:
        raise WorkspaceError(
            f"{where}: {relative!r} leads outside the workspace folder through a symlink; remove the link or the entry"
        )


def _parse(path: Path, raw: bytes) -> State:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise WorkspaceError(f"{path} is not JSON; delete it and run `emo-prune init MODEL` again") from None
    try:
        state = State.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise WorkspaceError(
            f"{path}: field {field}: {first['msg']} ({exc.error_count()} problem(s)); fix it, or delete the file and run `emo-prune init MODEL`"
        ) from None
    if state.format != FORMAT:
        raise WorkspaceError(
            f"{path}: format {state.format} is not {FORMAT} (written by another emo-prune version); delete it and run `emo-prune init MODEL`"
        )
    for kind, entries in (("profiles", state.profiles), ("builds", state.builds)):
        for i, entry in enumerate(entries):
            _inside(path.parent, entry.path, f"{path}: {kind}.{i}.path")
    return state


def read_state(folder: str | Path) -> State | None:
    """The folder's recorded state, None when it has no state file; WorkspaceError for a hostile one."""
    path = state_path(folder)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:  # ELOOP: a symlink; EACCES; ...
        if os.path.islink(path):
            raise WorkspaceError(
                f"{path} is a symlink; a workspace file is a regular file in the folder (remove the link)"
            ) from None
        raise WorkspaceError(f"cannot read {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not (info.st_mode & 0o170000 == 0o100000):
            raise WorkspaceError(f"{path} is not a regular file; remove it")
        raw = f.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        raise WorkspaceError(
            f"{path} is larger than {MAX_BYTES // 1024} KiB, too large to be a workspace file; delete it and run `emo-prune init MODEL`"
        )
    return _parse(path, raw)


def recipe_model(folder: Path) -> tuple[str, str] | None:
    """(model, recipe file name) of the one recipe in `folder`; None when there is none; refused when
    several recipes name different models (then `emo-prune init MODEL` says which one)."""
    found: dict[str, str] = {}
    for candidate in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        if candidate.is_symlink() or not candidate.is_file() or candidate.stat().st_size > MAX_BYTES:
            continue
        if not _looks_like_a_recipe(candidate):
            continue  # a CI workflow, a task config: never validated (that would load the pipeline, torch included)
        from emo_prune.errors import RecipeError
        from emo_prune.pipeline.recipe import load_recipe

        try:
            recipe, _ = load_recipe(candidate)
        except RecipeError:
            continue  # another YAML file (a CI workflow, a task): not a recipe
        found.setdefault(recipe.model, candidate.name)
    if len(found) > 1:
        listed = ", ".join(f"{name} ({model})" for model, name in found.items())
        raise WorkspaceError(f"the recipes here name different models ({listed}); choose one: emo-prune init MODEL")
    return next(((model, name) for model, name in found.items()), None)


def _looks_like_a_recipe(path: Path) -> bool:
    """A YAML mapping with a recipe's two required top-level keys, `model` and `budgets`."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError):
        return False
    return isinstance(data, dict) and "model" in data and "budgets" in data


def find_workspace(folder: str | Path = ".") -> Workspace | None:
    """The workspace of `folder`: its state file, else its one recipe; None when neither is there."""
    folder = Path(folder).absolute()
    state = read_state(folder)
    if state is not None:
        return Workspace(folder, state, recorded=True, origin=STATE_FILE)
    found = recipe_model(folder)
    if found is None:
        return None
    return Workspace(folder, State(format=FORMAT, model=found[0]), recorded=False, origin=f"recipe {found[1]}")


def _write(folder: Path, state: State, lock: FolderLock) -> None:
    from emo_prune.io.atomic import write_output

    text = json.dumps(state.model_dump(mode="json"), indent=1) + "\n"
    write_output(
        state_path(folder),
        lambda f: f.write(text.encode("utf-8")),
        overwrite=True,
        recognise=lambda p: read_state(p.parent) is not None,
        what="an emo-prune workspace file",
        error=WorkspaceError,
        lock=lock,
    )


def init_workspace(folder: str | Path, model: str, *, overwrite: bool = False) -> Workspace:
    """Write `folder`'s state file naming `model`; an existing one is kept unless `overwrite` (then its
    model changes and its records stay: they still name what was made here)."""
    folder = Path(folder).absolute()
    path = state_path(folder)
    with FolderLock(path) as lock:
        old = read_state(folder)
        if old is not None and not overwrite and old.model != model:
            raise WorkspaceError(f"{path} already names {old.model}; pass --overwrite to switch this folder to {model}")
        state = State(format=FORMAT, model=model) if old is None else old.model_copy(update={"model": model})
        _write(folder, state, lock)
    return Workspace(folder, state, recorded=True, origin=STATE_FILE)


def _relative(folder: Path, path: Path) -> str | None:
    """`path` relative to `folder` when it lies inside it, else None (outputs elsewhere are not recorded)."""
    try:
        return Path(os.path.abspath(path)).relative_to(folder).as_posix()
    except ValueError:
        return None


# which list of the state an entry goes to
_LISTS: dict[type[_Entry], str] = {ProfileEntry: "profiles", PlanEntry: "plans", BuildEntry: "builds"}


def record(folder: str | Path, model: str, entry: ProfileEntry | PlanEntry | BuildEntry) -> bool:
    """After a command wrote an output in `folder`: add it to the state file, creating the file (naming
    `model`) when the folder has none. Outputs outside the folder are not recorded. True when written."""
    folder = Path(folder).absolute()
    relative = _relative(folder, folder / entry.path)
    if relative is None or relative == ".":
        return False
    entry = entry.model_copy(update={"path": relative})
    with FolderLock(state_path(folder)) as lock:
        state = read_state(folder) or State(format=FORMAT, model=model)
        name = _LISTS[type(entry)]
        kept = [e for e in getattr(state, name) if e.path != relative]  # a rewritten output moves to the end
        state = state.model_copy(update={name: (*kept, entry)[-MAX_ENTRIES:]})
        _write(folder, state, lock)
    return True


def output_in(folder: str | Path, path: str | Path) -> str | None:
    """`path` relative to `folder` when it lies directly or deeper inside it (what `record` would store)."""
    return _relative(Path(folder).absolute(), Path(path))
