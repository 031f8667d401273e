"""The one output sink: every line emo-prune prints goes through here.

Human output goes to stdout through one Rich console; `--json` replaces it with one JSON document on
stdout per command. Errors are one line on stderr (and a JSON error object on stdout in --json mode).
Progress bars draw on stderr, only on a terminal and never in --json mode; off a terminal (a CI log)
progress is plain lines on stderr instead (LineProgress: for steps longer than a second, a line once
it runs, one per ~10% of it, one when it ends, each with the elapsed time). --quiet and --json hide both.
The console is the listener of `emo_prune.events`: library functions open their own progress, often inside
a command's or a pipeline step's, so `Output.progress` is reentrant (one display, the inner tasks in it).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from emo_prune.cli.tables import rich_table
from emo_prune.common.table import ReportTable
from emo_prune.common.text import inert
from emo_prune.common.units import duration
from emo_prune.errors import EmoPruneError


class RateColumn(ProgressColumn):
    """Shows a task's `rate` field (e.g. "1.2k tok/s") when the task sets one."""

    def render(self, task):  # noqa: ANN001, ANN201 (rich's signature)
        return str(task.fields.get("rate", ""))


def fit_table(table: Table, console: Console, drop: tuple[str, ...] = ()) -> Table:
    """Make `table` readable at the console's width (80 in a CI log) without truncating a header.

    When its natural width is too wide: a lighter box and padding first, then the columns named in
    `drop` are removed in that order until it fits, and whatever is still too wide wraps (never "…").
    """

    def natural() -> int:
        return Measurement.get(console, console.options.update_width(10_000), table).maximum

    if natural() <= console.width:
        return table
    table.box, table.padding, table.show_edge = box.SIMPLE_HEAD, (0, 1), False
    for header in drop:
        if natural() <= console.width:
            break
        table.columns[:] = [c for c in table.columns if c.header != header]
    for column in table.columns:
        if str(column.header).lower() in NAME_HEADERS:
            _keep_names_whole(column, console.width)
        else:
            column.no_wrap, column.overflow = False, "fold"
    return table


# columns of file, folder and build names: a name split over lines cannot be copied or read
NAME_HEADERS = {"file", "path", "build", "folder"}


def middle_ellipsis(text: str, width: int) -> str:
    """`text` cut in the middle to `width` characters: both ends of a file name stay readable."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return f"{text[:head]}…{text[len(text) - (width - 1 - head) :]}"


def _keep_names_whole(column: Any, console_width: int) -> None:
    """One line per name: names up to half the console keep every character, longer ones lose their middle."""
    budget = max(20, console_width // 2)
    cells = column._cells  # rich keeps a column's cells here; plain strings are what emo-prune puts there
    column._cells = [middle_ellipsis(c, budget) if isinstance(c, str) else c for c in cells]
    longest = max((len(c) for c in column._cells if isinstance(c, str)), default=0)
    column.no_wrap, column.overflow, column.min_width = True, "ellipsis", min(longest, budget)


class LineProgress:
    """The `rich.progress.Progress` calls emo-prune makes (add_task / update / advance), as log lines.

    A step that ends within DELAY seconds prints nothing (a quick command, or a refusal, keeps its
    output to its result or its one error line). A longer one prints "running" at DELAY (from a timer,
    so a step that reports no progress shows life too), then a line per 10% of its total, then
    "finished", each with the elapsed time.
    """

    DELAY = 1.0  # seconds before a step's first line
    STEP = 0.1  # a line per 10% of a task's total

    def __init__(self, console: Console) -> None:
        self.console = console
        self.tasks: dict[int, dict[str, Any]] = {}
        self.timers: dict[int, threading.Timer] = {}  # task id -> its "running" line's timer

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        task_id = len(self.tasks)
        self.tasks[task_id] = {
            "description": description, "total": total, "completed": 0.0, "start": time.perf_counter(), "shown": 0, "lines": 0, "done": False,
        }  # fmt: skip
        timer = threading.Timer(self.DELAY, self._line, (task_id, "running"))
        timer.daemon = True
        self.timers[task_id] = timer
        timer.start()
        return task_id

    def update(
        self,
        task_id: int,
        *,
        total: float | None = None,
        completed: float | None = None,
        advance: float | None = None,
        **fields: Any,
    ) -> None:
        task = self.tasks[task_id]
        if fields.get("description"):  # the phase running now: the "finished" line names the last one
            task["description"] = fields["description"]
        if total is not None:
            task["total"] = total
        if completed is not None:
            task["completed"] = completed
        if advance is not None:
            task["completed"] += advance
        if task["total"]:
            tenth = int(min(task["completed"] / task["total"], 1.0) / self.STEP)
            if tenth > task["shown"]:
                task["shown"] = tenth
                if time.perf_counter() - task["start"] >= self.DELAY:
                    self._line(task_id, f"{tenth * 10}%", fields.get("rate"))

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def close(self, finished: bool = True) -> None:
        self.finish(list(self.tasks), finished)

    def finish(self, task_ids: list[int], finished: bool = True) -> None:
        """End these tasks: no "running" line any more, and a "finished" line for each that printed one."""
        for task_id in task_ids:
            task = self.tasks[task_id]
            self.timers[task_id].cancel()
            if finished and task["lines"] and not task["done"]:
                self._line(task_id, "finished")
            task["done"] = True  # a nested block's tasks end with it, not again with the outer one

    def _line(self, task_id: int, what: str, rate: str | None = None) -> None:
        task = self.tasks[task_id]
        task["lines"] += 1
        elapsed = time.perf_counter() - task["start"]
        suffix = f", {rate}" if rate else ""
        self.console.print(
            inert(f"{task['description']}: {what} ({duration(elapsed)}{suffix})", markup=False), markup=False, highlight=False
        )


@dataclass
class Output:
    json_mode: bool = False
    debug: bool = False
    quiet: bool = False
    console: Console = field(default_factory=lambda: Console(highlight=False, soft_wrap=True))
    err_console: Console = field(default_factory=lambda: Console(stderr=True, highlight=False, soft_wrap=True))
    _in_result: bool = field(default=False, repr=False)
    _live: Progress | LineProgress | None = field(default=None, repr=False)  # the open progress (see `progress`)

    def print(self, *renderables: Any, **kwargs: Any) -> None:
        """Human-readable output; silent in --json mode, and in --quiet mode unless it renders a result.
        A ReportTable becomes a Rich table (cli/tables.py); `drop=` names the columns a narrow terminal loses first."""
        if not self.json_mode and (self._in_result or not self.quiet):
            drop = kwargs.pop("drop", ())
            renderables = tuple(rich_table(r) if isinstance(r, ReportTable) else r for r in renderables)
            renderables = tuple(fit_table(r, self.console, drop) if isinstance(r, Table) else r for r in renderables)
            self.console.print(*renderables, **kwargs)

    def note(self, message: str) -> None:
        """A status line on stderr (kept out of stdout so pipes stay clean); silent in --json / --quiet.
        Plain text, made inert: notes quote file names, domains and recorded paths."""
        if not (self.json_mode or self.quiet):
            self.err_console.print(inert(message), markup=True, highlight=False)

    def warn(self, message: str) -> None:
        """A warning on stderr (the work goes on); silent only in --quiet mode."""
        if not self.quiet:
            self.err_console.print(f"[bold yellow]warning:[/] {inert(message)}", markup=True, highlight=False)

    def result(self, data: Any, human: Callable[[], None] | None = None) -> None:
        """The command's result: JSON on stdout in --json mode, else `human()` renders it (--quiet too:
        quiet hides progress and notes, never results)."""
        if self.json_mode:
            sys.stdout.write(json.dumps(data, indent=2, default=_json_default) + "\n")
            sys.stdout.flush()
        elif human is not None:
            self._in_result = True
            try:
                human()
            finally:
                self._in_result = False

    def error(self, error: BaseException | str, kind: str = "error") -> None:
        keep = ""
        if isinstance(error, EmoPruneError):
            kind, message, keep = error.kind, str(error), "\n" if error.multiline else ""
        elif isinstance(error, str):
            message = error
        else:
            kind, message = "internal error", f"{type(error).__name__}: {error} (rerun with --debug for the traceback)"
        # the one render point of errors: a message may quote a file's string (a domain, a tensor name, a
        # path), so it is made inert here, whoever built it; JSON escapes control characters itself
        self.err_console.print(f"[bold red]{kind}:[/] {inert(message, keep=keep)}", markup=True, highlight=False)
        if self.json_mode:
            sys.stdout.write(json.dumps({"error": {"kind": kind, "message": message}}) + "\n")

    @property
    def show_progress(self) -> bool:
        return not (self.json_mode or self.quiet) and self.err_console.is_terminal

    def progress(self, transient: bool = True) -> AbstractContextManager[Progress]:
        """A Rich progress on stderr on a terminal; log lines (LineProgress) off one; nothing with --json / --quiet.

        Reentrant: one display is live at a time (rich refuses a second), so inside an open progress (a
        pipeline step, a command around a library call) this yields the same object; the inner block's
        tasks join it and end with the inner block.
        """
        if self._live is not None:
            return _nested(self._live)
        return self._outermost(transient)

    @contextmanager
    def _outermost(self, transient: bool) -> Iterator[Progress]:
        if not (self.json_mode or self.quiet) and not self.err_console.is_terminal:
            lines = LineProgress(self.err_console)
            self._live = lines
            try:
                yield lines  # type: ignore[misc]
            except BaseException:
                lines.close(finished=False)  # after an error its one line says what happened
                raise
            finally:
                self._live = None
            lines.close()
            return
        progress = Progress(
            SpinnerColumn(),
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            RateColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.err_console,
            transient=transient,
            disable=not self.show_progress,
        )
        self._live = progress
        try:
            with progress:
                yield progress
        finally:
            self._live = None


@contextmanager
def _nested(live: Progress | LineProgress) -> Iterator[Progress]:
    """`live` again, for a block inside the one that opened it: the tasks this block adds end with it (a
    rich bar leaves the display, as a transient display would; a log line says "finished", unless it failed)."""
    before = set(_task_ids(live))
    finished = False
    try:
        yield live  # type: ignore[misc]
        finished = True
    finally:
        added = [task_id for task_id in _task_ids(live) if task_id not in before]
        if isinstance(live, LineProgress):
            live.finish(added, finished)
        else:
            for task_id in added:
                live.remove_task(task_id)


def _task_ids(live: Progress | LineProgress) -> list[Any]:
    return list(live.tasks) if isinstance(live, LineProgress) else list(live.task_ids)


def _json_default(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if hasattr(value, "__fspath__"):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


#: the process-wide sink; the CLI configures it from global flags, library code may print through it.
out = Output()
