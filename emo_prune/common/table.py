"""A report's table, built once: the CLI renders it with Rich (cli/tables.py), a file as Markdown.

    ReportTable(
        title="scores (↑ higher is better, ↓ lower is better)",   # the terminal's caption
        columns=(Column("task"), Column("value", RIGHT)),
        rows=(("t_mc", "0.5"), ("t_ppl", Cell("0.91", BAD))),
    )

Cells are the text the user reads, already formatted (sizes, counts and times by common/units.py). A
`Cell` adds a tone: a terminal shows it in colour, a file leaves the text plain. Strings from files (task,
build and file names) go in as they are: each renderer makes every cell inert for its sink (Rich markup
escaped for the terminal; control characters made visible in both). The title is the terminal's caption
only: a Markdown document puts its own heading above a table (a file of one table has none).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from emo_prune.common.text import inert

LEFT: Literal["left"] = "left"
RIGHT: Literal["right"] = "right"  # numbers
GOOD, BAD = "good", "bad"  # tones: a result that holds (green), one that fails or drops (red)


@dataclass(frozen=True)
class Column:
    header: str
    align: Literal["left", "right"] = LEFT


@dataclass(frozen=True)
class Cell:
    text: str
    tone: str | None = None  # GOOD | BAD | None


@dataclass(frozen=True)
class ReportTable:
    title: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[str | Cell, ...], ...]

    def to_markdown(self) -> str:
        """'| task | value |\\n|---|---:|\\n| t_mc | 0.5 |\\n' (tones dropped; no control characters)."""
        lines = [_markdown_row(c.header for c in self.columns)]
        lines.append("|" + "".join("---:|" if c.align == RIGHT else "---|" for c in self.columns))
        lines += [_markdown_row(cell_text(cell) for cell in row) for row in self.rows]
        return "\n".join(lines) + "\n"  # every header and cell made inert by _markdown_row


def cell_text(cell: str | Cell) -> str:
    return cell.text if isinstance(cell, Cell) else cell


def _markdown_row(cells: Iterable[str]) -> str:
    """One Markdown table row. A cell cannot split it: a `|` inside (a build or task name) is escaped, a
    line break shown as its escape."""
    return "| " + " | ".join(inert(cell, markup=False).replace("|", "\\|") for cell in cells) + " |"
