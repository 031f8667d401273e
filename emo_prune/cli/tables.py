"""A library's ReportTable (common/table.py) as the Rich table the console prints.

Every cell and the title are made inert here (a task, build or file name cannot reach the terminal as
markup or control characters); a cell's tone colours it. `out.print` renders a ReportTable with this and
fits it to the console (`console.fit_table`, with the columns a narrow terminal drops first).
"""

from __future__ import annotations

from rich.table import Table

from emo_prune.common.table import BAD, GOOD, Cell, ReportTable
from emo_prune.common.text import inert

_COLOURS = {GOOD: "green", BAD: "red"}


def rich_table(report: ReportTable) -> Table:
    table = Table(title=inert(report.title))
    for column in report.columns:
        table.add_column(column.header, justify=column.align)
    for row in report.rows:
        table.add_row(*(_cell(cell) for cell in row))
    return table


def _cell(cell: str | Cell) -> str:
    if isinstance(cell, Cell):
        text = inert(cell.text)
        return f"[{_COLOURS[cell.tone]}]{text}[/]" if cell.tone else text
    return inert(cell)
