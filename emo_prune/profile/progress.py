"""The profile's one progress task: tokens pushed through the model, with their rate (as `emo-prune profile` shows it)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from emo_prune import events
from emo_prune.common.units import per_second


@contextmanager
def token_progress(total: int) -> Iterator[Callable[[int], None]]:
    """A "profile" task over `total` tokens (the whole model: the calibration set once; layer by layer: once
    per layer); yields `advance(tokens)`, which also shows the rate since the task began, e.g. "1.2k tok/s"."""
    start, done = time.perf_counter(), 0
    with events.progress() as progress:
        task = progress.add_task("profile", total=total)

        def advance(tokens: int) -> None:
            nonlocal done
            done += tokens
            progress.update(task, advance=tokens, rate=per_second(done, time.perf_counter() - start, "tok"))

        yield advance
