"""Report files: a JSON document emo-prune writes with its Markdown table beside it.

    RESULTS.json   eval's scores (`emo-prune eval --out`)       keys "format", "model", "comparison", ...
    RESULTS.md     the same report's table (common/table.py)
    OUT/report.json + OUT/report.md                              a run's (`emo-prune run`)

A JSON file is emo-prune's report of a kind when it is an object holding the kind's keys
(`ReportKind.keys`): nothing else marks it, so files written before this module existed are recognised
and files written now are the same bytes. The .md belongs to the .json beside it: it is replaced only
where that .json is one of ours, never beside a stranger's. Both are written under the .json's lock
(`io.lock`), each atomically (`io.atomic`), and refused without `overwrite` when they exist.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emo_prune.errors import EmoPruneError, OutputError
from emo_prune.io.atomic import atomic_write_text, check_output_file
from emo_prune.io.lock import FolderLock


@dataclass(frozen=True)
class ReportKind:
    keys: frozenset[str]  # top-level keys every report of the kind holds: how emo-prune tells its own file
    what: str  # "emo-prune results": how messages name the kind
    error: type[EmoPruneError] = OutputError  # what a refusal raises

    def recognise(self, path: Path) -> bool:
        """An existing JSON file that holds this kind's keys (so a rerun may replace it and its .md)."""
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError, RecursionError):
            return False
        return isinstance(data, dict) and self.keys <= data.keys()

    def check_output(self, path: Path, overwrite: bool) -> None:
        """Refuse before any work: the .json or its .md a folder or special file, a stranger's .json (or a
        .md beside one), or either existing without `overwrite`."""
        check_output_file(path, overwrite=overwrite, recognise=self.recognise, what=f"an {self.what} file", error=self.error)
        md = markdown_path(path)
        if md.exists() and not self.recognise(path):
            raise self.error(f"{md} exists and does not belong to {self.what}; refusing to replace it")
        # the .md is ours when the .json is (checked above)
        check_output_file(md, overwrite=overwrite, recognise=lambda _md: True, what=f"a table of {self.what}", error=self.error)

    def write(
        self, path: Path, document: dict[str, Any], markdown: str, *, overwrite: bool, lock: FolderLock | None = None
    ) -> tuple[Path, Path]:
        """`document` as PATH (indented JSON) and `markdown` as PATH.md, under PATH's lock (`lock`: that
        lock, when the caller took it before its long work). Returns (json path, md path)."""
        md = markdown_path(path)
        with lock or FolderLock(path):
            self.check_output(path, overwrite)
            atomic_write_text(path, json.dumps(document, indent=2, default=str) + "\n", replace=overwrite)
            atomic_write_text(md, markdown, replace=overwrite)
        return path, md


def markdown_path(path: Path) -> Path:
    """RESULTS.json -> RESULTS.md: the table beside its document."""
    return path.with_suffix(".md")
