"""How `profile`, `extract` and `eval` fill in what the user left out from the folder's workspace
(emo_prune.workspace.state; `emo-prune init` makes one, cli/workspace_cmd.py). An argument the user typed
always wins over the workspace.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from emo_prune.cli.console import out
from emo_prune.cli.options import MODEL_HELP, SelectionFlags
from emo_prune.common.constants import PROFILE_METHODS
from emo_prune.errors import WorkspaceError

if TYPE_CHECKING:
    from emo_prune.workspace.state import BuildEntry, Workspace


# a MODEL argument that may be left out in a workspace
WorkspaceModel = Annotated[
    Path | None,
    typer.Argument(metavar="MODEL", help=f"{MODEL_HELP} Default: this workspace's (emo-prune init).", show_default=False),
]


def here() -> Path:
    return Path.cwd()


def model_or_workspace(model: Path | None, example: str) -> tuple[Path, Workspace | None]:
    """The MODEL the user typed, else the workspace's (said in a note), else one line saying how to set
    one. Also the folder's workspace (None when there is none)."""
    from emo_prune.workspace.state import find_workspace

    workspace = find_workspace(here())
    if model is not None:
        return model, workspace
    if workspace is None:
        raise WorkspaceError(
            f"no MODEL given and this folder is no workspace: pass MODEL ({example}), "
            "or run `emo-prune init MODEL` here once (e.g. emo-prune init builtin:emo-small)"
        )
    out.note(f"model: {workspace.model} (this workspace's, from {workspace.origin}; pass MODEL to choose another)")
    return Path(workspace.model), workspace


def records_here(model: Path | str, workspace: Workspace | None) -> bool:
    """Whether outputs of a command on `model` belong in this folder's records: the folder has no state
    yet (the first command given a MODEL starts one) or names this same model."""
    return workspace is None or not workspace.recorded or workspace.model == str(model)


def record_output(model: Path | str, workspace: Workspace | None, kind: str, path: Path, domains: tuple[str, ...]) -> None:
    """Record a profile, plan or build (`kind`) just written at `path` in this folder's workspace, when
    it lies inside the folder and the workspace is this model's (or the folder has none yet)."""
    from emo_prune.workspace.state import BuildEntry, PlanEntry, ProfileEntry, output_in, record

    if not records_here(model, workspace) or output_in(here(), path) is None:
        return
    if kind == "build":
        entry: ProfileEntry | PlanEntry | BuildEntry = BuildEntry(path=str(path), source=str(model), domains=domains)
    else:
        entry = {"profile": ProfileEntry, "plan": PlanEntry}[kind](path=str(path), domains=domains)
    record(here(), str(model), entry)


def workspace_selection(model: Path | str, workspace: Workspace | None, selection: SelectionFlags) -> SelectionFlags:
    """`extract` with no --profile in a workspace of this model: the newest profile made here that covers
    --domain; with no --domain, the newest profile when it covers one domain (then that is the domain)."""
    if selection.profile is not None or selection.method not in PROFILE_METHODS:
        return selection
    if workspace is None or not workspace.recorded or workspace.model != str(model):
        return selection
    domains = tuple(selection.domain or ())
    entry = workspace.newest_profile(domains)
    if entry is None:
        return selection
    if not domains:
        if len(entry.domains) != 1:
            raise WorkspaceError(
                f"the newest profile here, {entry.path}, covers {', '.join(entry.domains)}: pass --domain to say which to keep"
            )
        domains = entry.domains
    out.note(f"profile: {entry.path} (this workspace's newest covering {', '.join(domains)}; --profile to choose another)")
    return dataclasses.replace(selection, profile=workspace.resolve(entry.path), domain=list(domains))


def workspace_build() -> BuildEntry:
    """`eval` with no MODEL: the newest build made in this workspace."""
    from emo_prune.workspace.state import find_workspace

    workspace = find_workspace(here())
    if workspace is None:
        raise WorkspaceError(
            "no MODEL given and this folder is no workspace: pass the build to score (emo-prune eval BUILD), "
            "or run `emo-prune init MODEL` here and make a build with `emo-prune extract --keep 0.125`"
        )
    build = workspace.newest_build()
    if build is None:
        raise WorkspaceError(
            f"this workspace ({workspace.model}) holds no build yet: run `emo-prune extract --keep 0.125 --domain code` first, or pass MODEL"
        )
    return build
