"""What the library tells the person running it, without knowing who listens.

Library code reports through this module only: `note(message)`, `warn(message)`, and `with progress()
as p:` where `p` takes rich's `Progress` calls (`add_task`, `update`, `advance`). It never imports the
console, and no library function takes a callback to report through: each long operation opens its own
`progress()` task. Those may nest (a pipeline step around an extraction): a listener's `progress()` is
reentrant, its inner blocks' tasks joining the open display. Without a listener, notes go to the
`emo_prune` logger at INFO, warnings at WARNING, and progress is silent; the CLI installs its console
(`listen(out)`, emo_prune/cli/app.py) once, so its flags (--quiet, --json, --debug) decide what a user sees.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

log = logging.getLogger("emo_prune")


class Listener(Protocol):
    debug: bool  # show the noise of the libraries emo-prune drives (lm-eval's progress bars, ...)

    def note(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...

    def progress(self) -> AbstractContextManager[Any]: ...


class _SilentProgress:
    """rich.progress.Progress's calls, doing nothing."""

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        return 0

    def update(self, task_id: int, **fields: Any) -> None:
        pass

    def advance(self, task_id: int, advance: float = 1) -> None:
        pass


class LoggingListener:
    """The default: messages to the `emo_prune` logger, no progress."""

    debug = False

    def note(self, message: str) -> None:
        log.info(message)

    def warn(self, message: str) -> None:
        log.warning(message)

    @contextmanager
    def progress(self) -> Iterator[_SilentProgress]:
        yield _SilentProgress()


_listener: Listener = LoggingListener()


def listen(listener: Listener) -> Listener:
    """Send every later report to `listener`; returns the previous one (to restore it)."""
    global _listener
    previous, _listener = _listener, listener
    return previous


def note(message: str) -> None:
    _listener.note(message)


def warn(message: str) -> None:
    _listener.warn(message)


def progress() -> AbstractContextManager[Any]:
    return _listener.progress()


def debugging() -> bool:
    return bool(getattr(_listener, "debug", False))
