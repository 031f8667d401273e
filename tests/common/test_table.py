"""A report table's Markdown: one line per row, whatever its cells hold."""

from __future__ import annotations

from emo_prune.common.table import RIGHT, Cell, Column, ReportTable


def test_cells_cannot_split_a_markdown_row():
    table = ReportTable(
        title="t",
        columns=(Column("build"), Column("value", RIGHT)),
        rows=(("code|12.5", Cell("0.5", "good")), ("two\nlines", "1")),
    )
    lines = table.to_markdown().splitlines()
    assert lines[:2] == ["| build | value |", "|---|---:|"]
    assert lines[2] == "| code\\|12.5 | 0.5 |"
    assert len(lines) == 4 and lines[3].startswith("| two") and lines[3].endswith(" | 1 |")
