"""`emo-prune init MODEL` and `emo-prune status`: the folder as a workspace (emo_prune.workspace.state).

    emo-prune init builtin:emo-small       # writes ./emo-prune.json
    emo-prune profile --domain code        # profiles the workspace's model, records the profile
    emo-prune extract --keep 0.125         # selects from the newest profile covering the domain
    emo-prune eval                         # scores the newest build against its source
    emo-prune status                       # what the workspace holds

How `profile`, `extract` and `eval` fill in what the user left out: cli/workspace.py.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from emo_prune.cli.console import out
from emo_prune.cli.options import MODEL_HELP, JsonFlag
from emo_prune.cli.workspace import here
from emo_prune.errors import WorkspaceError


def init_command(
    model: Annotated[str, typer.Argument(metavar="MODEL", help=MODEL_HELP, show_default=False)],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Switch an existing workspace to MODEL (its records stay).")
    ] = False,
    json_output: JsonFlag = False,
) -> None:
    """Make this folder a workspace for MODEL: later commands here need no MODEL (writes ./emo-prune.json).

    Then: emo-prune profile --domain code; emo-prune extract --keep 0.125; emo-prune eval; emo-prune status.

    Example: emo-prune init builtin:emo-small
    """
    from emo_prune.cli.options import model_path
    from emo_prune.io import Checkpoint
    from emo_prune.workspace.state import init_workspace, state_path

    Checkpoint.open(model_path(model))  # a model that is not there is refused now, not at the first profile
    workspace = init_workspace(here(), model, overwrite=overwrite)
    data = {"workspace": str(state_path(workspace.folder)), "model": workspace.model}
    out.result(
        data, lambda: out.print(f"workspace {workspace.folder}: model {workspace.model} (next: emo-prune profile --domain code)")
    )


def status_command(json_output: JsonFlag = False) -> None:
    """List what this folder's workspace holds: its model, the profiles, plans and builds made here (newest last).

    Example: emo-prune status
    """
    from emo_prune.workspace.state import find_workspace

    workspace = find_workspace(here())
    if workspace is None:
        raise WorkspaceError("this folder is no workspace (no emo-prune.json, no recipe): run `emo-prune init MODEL` here")
    profiles = [
        {"path": p.path, "domains": list(p.domains), "present": workspace.resolve(p.path).is_file()}
        for p in workspace.state.profiles
    ]
    plans = [
        {"path": p.path, "domains": list(p.domains), "present": workspace.resolve(p.path).is_file()}
        for p in workspace.state.plans
    ]
    builds = [
        {"path": b.path, "source": b.source, "domains": list(b.domains), "present": workspace.resolve(b.path).is_dir()}
        for b in workspace.state.builds
    ]
    data = {
        "folder": str(workspace.folder),
        "model": workspace.model,
        "from": workspace.origin,
        "profiles": profiles,
        "plans": plans,
        "builds": builds,
    }
    out.result(data, lambda: render_status(data))


def render_status(data: dict) -> None:
    out.print(f"[bold]workspace[/] {data['folder']}: model {data['model']} (from {data['from']})")
    for kind in ("profiles", "plans", "builds"):
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
