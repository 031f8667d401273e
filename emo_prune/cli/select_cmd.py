"""`emo-prune select MODEL --profile P --domain D --keep K --out PLAN.json`: which experts to keep."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from emo_prune.cli.format import compress_ranges
from emo_prune.cli.options import (
    JsonFlag,
    LayerwiseOption,
    MaxMemoryOption,
    ModelDir,
    SelectionFlags,
    TargetOption,
    ThreadsOption,
    memory_path,
    model_path,
)
from emo_prune.cli.console import out
from emo_prune.text import inert
from emo_prune.memory.plan import MemoryOptions

if TYPE_CHECKING:
    from emo_prune.select import Plan, SelectOptions


def run_select(model_dir: Path, profile: Path | None, options: SelectOptions) -> Plan:
    """make_plan with a progress bar over layers for greedy."""
    from emo_prune.select import make_plan

    if options.method != "greedy":
        return make_plan(model_dir, options, profile)
    with out.progress() as progress:
        task = progress.add_task("greedy selection, layer by layer", total=None)
        return make_plan(
            model_dir, options, profile, on_layer=lambda layer: progress.update(task, completed=layer + 1), notify=out.note
        )


def check_plan_target(target: str | None, model_dir: Path, plan: Plan) -> None:
    """--target: refuse (before anything is written) a plan whose build the target cannot carry."""
    if target is None:
        return
    from emo_prune.export.check import check_target
    from emo_prune.io import Checkpoint

    check_target(target, Checkpoint.open(model_dir).config, plan.kept_counts())


def register(app: typer.Typer) -> None:
    from emo_prune.cli.app import command

    @app.command("select")
    @command
    def select_command(
        model_dir: ModelDir,
        out_path: Annotated[Path, typer.Option("--out", help="Plan file to write (JSON).", show_default=False)],
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

        model_dir = model_path(model_dir)
        check_output_file(out_path, overwrite=overwrite, recognise=is_plan_file, what="a plan file", error=PlanError)  # before the search
        options = selection.options(MemoryOptions(memory_path(layerwise), max_memory))  # memory: greedy only
        plan = run_select(model_dir, selection.profile, options)
        check_plan_target(target, model_dir, plan)
        plan.save(out_path, overwrite=overwrite)
        out.result({"plan": str(out_path), **plan.to_dict()}, lambda: render_plan(plan, out_path))


def render_plan(plan: Plan, path: Path | None = None) -> None:
    title = f"experts kept per layer ({plan.method}, keep {plan.keep}, {plan.budget} budget)"
    table = Table(title=inert(title))  # a plan file's method / keep / budget strings
    for col in ("layer", "kept", "original ids"):
        table.add_column(col, justify="right" if col != "original ids" else "left")
    domains = sorted(plan.coverage)
    for d in domains:
        table.add_column(f"mass kept: {inert(d)}", justify="right")
    for i, ids in enumerate(plan.experts_kept_per_layer):
        cells = ["dense" if ids is None else str(len(ids)), "-" if ids is None else compress_ranges(sorted(ids))]
        cells += [_fraction(plan.coverage[d][i]) for d in domains]
        table.add_row(str(i), *cells)
    out.print(table)
    if path is not None:
        out.print(f"plan written to {inert(path)}")


def _fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
