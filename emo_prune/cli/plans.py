"""A plan on the terminal and against --target: shared by `select` and `extract`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from emo_prune.cli.console import out
from emo_prune.cli.format import compress_ranges
from emo_prune.common.text import inert

if TYPE_CHECKING:
    from emo_prune.select import Plan


def check_plan_target(target: str | None, model_dir: Path, plan: Plan) -> None:
    """--target: refuse (before anything is written) a plan whose build the target cannot carry."""
    if target is None:
        return
    from emo_prune.export.check import check_target
    from emo_prune.io import Checkpoint

    check_target(target, Checkpoint.open(model_dir).config, plan.kept_counts())


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
