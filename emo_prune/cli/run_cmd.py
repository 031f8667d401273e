"""`emo-prune run [RECIPE.yaml] [--out DIR] [--set key=value ...]`: a recipe, end to end, gated."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from emo_prune.cli.console import out
from emo_prune.cli.options import JsonFlag, TargetOption, ThreadsOption
from emo_prune.common.text import inert, plural

if TYPE_CHECKING:
    from emo_prune.pipeline import RunReport


def run_command(
    recipe: Annotated[
        str,
        typer.Argument(help="Recipe file, or the name of a shipped recipe (recipes/NAME.yaml).", show_default=True),
    ] = "quickstart",
    out_dir: Annotated[Path | None, typer.Option("--out", help="Run folder (default: runs/<recipe name>/).")] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a recipe field before validation: key.path=value (YAML value)."),
    ] = None,
    target: TargetOption = None,
    threads: ThreadsOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Profile -> select -> extract -> verify -> eval for every budget of a recipe, then check its gates.

    Finished steps whose inputs did not change are skipped, so a run can be resumed. Writes
    report.json, report.md and recipe.resolved.yaml next to the builds. Exit code 1 when a gate fails.

    Example: emo-prune run  (the shipped quickstart recipe; or: emo-prune run my-recipe.yaml --set eval.limit=8)
    """
    from emo_prune.pipeline import load_recipe, run_recipe

    parsed, path = load_recipe(recipe, overrides or [])
    report = run_recipe(parsed, out_dir, recipe_file=path, overrides=overrides or [], target=target)
    out.result(report.to_dict(), lambda: render(report))
    if not report.passed and out.json_mode:
        raise typer.Exit(1)  # the JSON document above already lists the failed gates
    report.check_gates()


def render(report: RunReport) -> None:
    out.print(report.builds_table())
    for _heading, table in report.comparisons():
        out.print(table)
    edge = report.edge_table()
    if edge is not None:
        out.print(edge)
    ran = sum(s.status == "ran" for s in report.steps)
    out.print(
        f"{plural(ran, 'step')} ran, {len(report.steps) - ran} skipped (up to date); report: {inert(report.out_dir / 'report.md')}"
    )
    if report.passed and report.gates:
        out.print(f"[green]{'the gate holds' if len(report.gates) == 1 else f'all {len(report.gates)} gates hold'}[/]")
