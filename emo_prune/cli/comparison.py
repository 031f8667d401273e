"""The pruned-vs-original table: `eval --baseline` and `run` (with its gates) show it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

from emo_prune.common.text import inert

if TYPE_CHECKING:
    from emo_prune.eval import MetricDelta


def comparison_table(
    rows: list[MetricDelta], title: str = "pruned vs original (primary metric per task)", verdicts: dict[str, bool] | None = None
) -> Table:
    """One row per task; `verdicts` (task -> gate held) adds a gate column."""
    from emo_prune.eval.results import plus_minus

    table = Table(title=inert(title))
    columns = ["task", "metric", "original", "pruned", "delta", "retained"] + (["gate"] if verdicts is not None else [])
    for col in columns:
        table.add_column(col, justify="left" if col in ("task", "metric", "gate") else "right")
    for r in rows:
        style = "red" if r.drop > 0 else "green"
        cells = [
            inert(r.task),
            f"{inert(r.metric)} {'↑' if r.higher_is_better else '↓'}",
            plus_minus(r.baseline, r.baseline_stderr),
            plus_minus(r.value, r.stderr),
            f"[{style}]{r.delta:+.3g}[/]",
            f"{r.retained:.1%}",
        ]
        if verdicts is not None:
            held = verdicts.get(r.task)
            cells.append("" if held is None else "[green]pass[/]" if held else "[red]FAIL[/]")
        table.add_row(*cells)
    return table
