"""`emo-prune select MODEL --profile P --domain D --keep K --out PLAN.json`: which experts to keep."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emo_prune.cli.console import out
from emo_prune.cli.options import (
    JsonFlag,
    LayerwiseOption,
    MaxMemoryOption,
    SelectionFlags,
    TargetOption,
    ThreadsOption,
    memory_path,
    model_path,
)
from emo_prune.cli.plans import check_plan_target, render_plan
from emo_prune.cli.workspace import WorkspaceModel, model_or_workspace, record_output, workspace_selection
from emo_prune.memory.plan import MemoryOptions


def select_command(
    out_path: Annotated[Path, typer.Option("--out", help="Plan file to write (JSON).", show_default=False)],
    model_dir: WorkspaceModel = None,  # after --out only for Python's sake: a required option has no default
    selection: SelectionFlags = SelectionFlags(),
    layerwise: LayerwiseOption = None,
    max_memory: MaxMemoryOption = None,
    target: TargetOption = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --out if it is a plan file.")] = False,
    threads: ThreadsOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Choose the experts each layer keeps and write them as a plan (for `extract --plan`).

    Subsets from one profile are nested: the 12.5% set lies inside the 25% set (except greedy; use --within).

    Example: emo-prune select builtin:emo-small --profile emo-small-code.profile.safetensors --keep 0.25 --out code25.json
    """
    from emo_prune.errors import PlanError
    from emo_prune.io.atomic import check_output_file
    from emo_prune.select.plan import is_plan_file
    from emo_prune.select.selector import make_plan

    model_arg, workspace = model_or_workspace(
        model_dir, "emo-prune select builtin:emo-small --profile P --keep 0.25 --out plan.json"
    )
    selection = workspace_selection(model_arg, workspace, selection)
    model_dir = model_path(model_arg)
    check_output_file(
        out_path, overwrite=overwrite, recognise=is_plan_file, what="a plan file", error=PlanError
    )  # before the search
    options = selection.options(MemoryOptions(memory_path(layerwise), max_memory))  # memory: greedy only
    plan = make_plan(model_dir, options, selection.profile)
    check_plan_target(target, model_dir, plan)
    plan.save(out_path, overwrite=overwrite)
    record_output(model_arg, workspace, "plan", out_path, tuple(plan.domains))
    out.result({"plan": str(out_path), **plan.to_dict()}, lambda: render_plan(plan, out_path))
