"""`emo-prune run [RECIPE.yaml] [--out DIR] [--set key=value ...]`: a recipe, end to end, gated."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from emo_prune.cli.comparison import comparison_table
from emo_prune.cli.console import out
from emo_prune.cli.options import JsonFlag, TargetOption, ThreadsOption
from emo_prune.common.text import inert, plural
from emo_prune.common.units import megabytes

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
    table = Table(title=inert(f"{report.recipe.name}: builds in {report.out_dir / 'builds'}"))
    for col in ("build", "experts/layer", "verify max diff", "gates"):
        table.add_column(col, justify="left" if col == "build" else "right")
    for b in report.builds:
        kept = "/".join(str(c) for c in sorted({c for c in b.kept_counts if c is not None}))
        verify = "-" if b.verify is None else f"{b.verify['max_abs_diff']:.1e}"
        held = sum(g.passed for g in b.gates)
        gates = "-" if not b.gates else f"[{'green' if held == len(b.gates) else 'red'}]{held}/{len(b.gates)} hold[/]"
        table.add_row(inert(b.folder.name), kept, verify, gates)
    out.print(table)
    for b in report.builds:
        if b.comparison:
            verdicts: dict[str, bool] = {}
            for g in b.gates:
                verdicts[g.task] = verdicts.get(g.task, True) and g.passed
            # comparison_table makes its title inert
            out.print(comparison_table(b.comparison, title=f"{b.folder.name} vs original", verdicts=verdicts))
    edge = [(b, e) for b in report.builds for e in b.edge]
    if edge:
        files = Table(title="edge files, scored in llama.cpp (safetensors build in parentheses)")
        for col in ("file", "size", "scores"):
            files.add_column(col, justify="right" if col == "size" else "left")
        for _build, e in edge:
            scores = ", ".join(f"{inert(r.task)} {r.value:.4g} ({r.baseline:.4g})" for r in e.build_comparison) or "-"
            files.add_row(inert(e.file.name), megabytes(e.bytes), scores)
        out.print(files)
    ran = sum(s.status == "ran" for s in report.steps)
    out.print(
        f"{plural(ran, 'step')} ran, {len(report.steps) - ran} skipped (up to date); report: {inert(report.out_dir / 'report.md')}"
    )
    if report.passed and report.gates:
        out.print(f"[green]{'the gate holds' if len(report.gates) == 1 else f'all {len(report.gates)} gates hold'}[/]")
