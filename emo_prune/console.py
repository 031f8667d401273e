"""The one output sink: every line emo-prune prints goes through here.

Human output goes to stdout through one Rich console; `--json` replaces it with one JSON document on
stdout per command. Errors are one line on stderr (and a JSON error object on stdout in --json mode).
Progress bars draw on stderr, only on a terminal and never in --json mode.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape
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

from emo_prune.errors import EmoPruneError


class RateColumn(ProgressColumn):
    """Shows a task's `rate` field (e.g. "1.2k tok/s") when the task sets one."""

    def render(self, task):  # noqa: ANN001, ANN201 (rich's signature)
        return str(task.fields.get("rate", ""))


@dataclass
class Output:
    json_mode: bool = False
    debug: bool = False
    quiet: bool = False
    console: Console = field(default_factory=lambda: Console(highlight=False, soft_wrap=True))
    err_console: Console = field(default_factory=lambda: Console(stderr=True, highlight=False, soft_wrap=True))

    def print(self, *renderables: Any, **kwargs: Any) -> None:
        """Human-readable output; silent in --json and --quiet modes."""
        if not (self.json_mode or self.quiet):
            self.console.print(*renderables, **kwargs)

    def note(self, message: str) -> None:
        """A status line on stderr (kept out of stdout so pipes stay clean); silent in --json / --quiet."""
        if not (self.json_mode or self.quiet):
            self.err_console.print(message)

    def warn(self, message: str) -> None:
        """A warning on stderr (the work goes on); silent only in --quiet mode."""
        if not self.quiet:
            self.err_console.print(f"[bold yellow]warning:[/] {escape(message)}", markup=True, highlight=False)

    def result(self, data: Any, human: Callable[[], None] | None = None) -> None:
        """The command's result: JSON on stdout in --json mode, else `human()` renders it."""
        if self.json_mode:
            sys.stdout.write(json.dumps(data, indent=2, default=_json_default) + "\n")
            sys.stdout.flush()
        elif human is not None:
            human()

    def error(self, error: BaseException | str) -> None:
        if isinstance(error, EmoPruneError):
            kind, message = error.kind, str(error)
        elif isinstance(error, str):
            kind, message = "error", error
        else:
            kind, message = "internal error", f"{type(error).__name__}: {error} (rerun with --debug for the traceback)"
        self.err_console.print(f"[bold red]{kind}:[/] {escape(message)}", markup=True, highlight=False)
        if self.json_mode:
            sys.stdout.write(json.dumps({"error": {"kind": kind, "message": message}}) + "\n")

    @property
    def show_progress(self) -> bool:
        return not (self.json_mode or self.quiet) and self.err_console.is_terminal

    @contextmanager
    def progress(self, transient: bool = True) -> Iterator[Progress]:
        """A Rich progress on stderr; disabled (still usable) off a terminal or in --json mode."""
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
        with progress:
            yield progress


def _json_default(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if hasattr(value, "__fspath__"):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


#: the process-wide sink; the CLI configures it from global flags, library code may print through it.
out = Output()
