"""`emo-prune init MODEL` and `emo-prune status`: the folder as a workspace (emo_prune.workspace).

    emo-prune init builtin:emo-small       # writes ./emo-prune.json
    emo-prune profile --domain code        # profiles the workspace's model, records the profile
    emo-prune extract --keep 0.125         # selects from the newest profile covering the domain
    emo-prune eval                         # scores the newest build against its source
    emo-prune status                       # what the workspace holds

The helpers below are how `profile`, `extract` and `eval` fill in what the user left out; an
argument the user typed always wins over the workspace.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from emo_prune.cli.options import MODEL_HELP, JsonFlag, SelectionFlags
from emo_prune.cli.console import out
from emo_prune.constants import PROFILE_METHODS
from emo_prune.errors import WorkspaceError

if TYPE_CHECKING:
    from emo_prune.workspace import BuildEntry, Workspace


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
    from emo_prune.workspace import find_workspace

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


def record_profile(model: Path | str, workspace: Workspace | None, path: Path, domains: tuple[str, ...]) -> None:
    from emo_prune.workspace import ProfileEntry, output_in, record

    if records_here(model, workspace) and output_in(here(), path) is not None:
        record(here(), str(model), profile=ProfileEntry(path=str(path), domains=domains))


def record_build(model: Path | str, workspace: Workspace | None, path: Path, domains: tuple[str, ...]) -> None:
    from emo_prune.workspace import BuildEntry, output_in, record

    if records_here(model, workspace) and output_in(here(), path) is not None:
        record(here(), str(model), build=BuildEntry(path=str(path), source=str(model), domains=domains))


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
            raise WorkspaceError(f"the newest profile here, {entry.path}, covers {', '.join(entry.domains)}: pass --domain to say which to keep")
        domains = entry.domains
    out.note(f"profile: {entry.path} (this workspace's newest covering {', '.join(domains)}; --profile to choose another)")
    return dataclasses.replace(selection, profile=workspace.resolve(entry.path), domain=list(domains))


def workspace_build() -> BuildEntry:
    """`eval` with no MODEL: the newest build made in this workspace."""
    from emo_prune.workspace import find_workspace

    workspace = find_workspace(here())
    if workspace is None:
        raise WorkspaceError(
            "no MODEL given and this folder is no workspace: pass the build to score (emo-prune eval BUILD), "
            "or run `emo-prune init MODEL` here and make a build with `emo-prune extract --keep 0.125`"
        )
    build = workspace.newest_build()
    if build is None:
        raise WorkspaceError(f"this workspace ({workspace.model}) holds no build yet: run `emo-prune extract --keep 0.125 --domain code` first, or pass MODEL")
    return build


def register(app: typer.Typer) -> None:
    from emo_prune.cli.app import command

    @app.command("init")
    @command
    def init_command(
        model: Annotated[str, typer.Argument(metavar="MODEL", help=MODEL_HELP, show_default=False)],
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Switch an existing workspace to MODEL (its records stay).")] = False,
        json_output: JsonFlag = False,
    ) -> None:
        """Make this folder a workspace for MODEL: later commands here need no MODEL (writes ./emo-prune.json).

        Then: emo-prune profile --domain code; emo-prune extract --keep 0.125; emo-prune eval; emo-prune status.

        Example: emo-prune init builtin:emo-small
        """
        from emo_prune.cli.options import model_path
        from emo_prune.io import Checkpoint
        from emo_prune.workspace import init_workspace, state_path

        Checkpoint.open(model_path(model))  # a model that is not there is refused now, not at the first profile
        workspace = init_workspace(here(), model, overwrite=overwrite)
        data = {"workspace": str(state_path(workspace.folder)), "model": workspace.model}
        out.result(data, lambda: out.print(f"workspace {workspace.folder}: model {workspace.model} (next: emo-prune profile --domain code)"))

    @app.command("status")
    @command
    def status_command(json_output: JsonFlag = False) -> None:
        """List what this folder's workspace holds: its model, the profiles and builds made here (newest last).

        Example: emo-prune status
        """
        from emo_prune.workspace import find_workspace

        workspace = find_workspace(here())
        if workspace is None:
            raise WorkspaceError("this folder is no workspace (no emo-prune.json, no recipe): run `emo-prune init MODEL` here")
        profiles = [{"path": p.path, "domains": list(p.domains), "present": workspace.resolve(p.path).is_file()} for p in workspace.state.profiles]
        builds = [
            {"path": b.path, "source": b.source, "domains": list(b.domains), "present": workspace.resolve(b.path).is_dir()}
            for b in workspace.state.builds
        ]
        data = {"folder": str(workspace.folder), "model": workspace.model, "from": workspace.origin, "profiles": profiles, "builds": builds}
        out.result(data, lambda: render_status(data))

    app.command("ls", help="Same as `emo-prune status`.", hidden=True)(status_command)


def render_status(data: dict) -> None:
    out.print(f"[bold]workspace[/] {data['folder']}: model {data['model']} (from {data['from']})")
    for kind in ("profiles", "builds"):
        entries = data[kind]
        if not entries:
            out.print(f"no {kind} yet")
            continue
        table = Table(title=f"{kind} (newest last)")
        table.add_column("path")
        table.add_column("domains")
        if kind == "builds":
            table.add_column("source")
        table.add_column("present")
        for e in entries:
            cells = [e["path"], ", ".join(e["domains"]) or "-"] + ([e["source"]] if kind == "builds" else [])
            table.add_row(*cells, "yes" if e["present"] else "[red]missing[/]")
        out.print(table)
