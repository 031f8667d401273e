"""Resumable steps: a step is skipped when its output exists and was made from the same inputs.

Each step has a key: sha256 over its name, the recipe section it reads, the digests of the outputs it
consumes (model shards, profile, plan file, build shards) and the tool version. When it finishes, a
stamp `OUT/.steps/<step>.json` records the key and the digest of what it wrote; the next run skips the
step only if the key matches, the output is still there, and its digest is still the recorded one
(an edited plan or a half-deleted build runs again).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emo_prune import events
from emo_prune.io import Checkpoint, model_identity, sha256_file
from emo_prune.io.atomic import atomic_write_text
from emo_prune.version import __version__

STAMPS = ".steps"


@contextmanager
def step_progress(description: str) -> Iterator[None]:
    """A spinner naming the step that runs (e.g. "extract code-25pct"); the library's own task (bytes
    written, layers chosen) joins it in the same display, below it, until the step ends."""
    with events.progress() as progress:
        progress.add_task(description, total=None)
        yield


def step_key(step: str, **inputs: Any) -> str:
    data = {"step": step, "tool_version": __version__, **inputs}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def output_digest(path: Path) -> str | None:
    """sha256 of a file, or the shard digest of a model folder; None when it is missing or unreadable."""
    try:
        if path.is_dir():
            return model_identity(Checkpoint.open(path))["digest"]
        if path.is_file():
            return sha256_file(path)
    except Exception:  # noqa: BLE001 (any unreadable output just means: run the step again)
        return None
    return None


@dataclass
class StepResult:
    step: str
    status: str  # "ran" | "skipped"
    output: str
    seconds: float
    key: str

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "status": self.status, "output": self.output, "seconds": round(self.seconds, 3)}


class Steps:
    """Runs steps under `root`, skipping those whose stamp still matches; keeps the list for the report."""

    def __init__(self, root: Path, on_status: Callable[[StepResult], None] | None = None):
        self.root = root
        self.results: list[StepResult] = []
        self.on_status = on_status

    def _stamp(self, step: str) -> Path:
        return self.root / STAMPS / f"{step.replace('/', '__')}.json"

    def up_to_date(self, step: str, key: str, output: Path) -> bool:
        try:
            stamp = json.loads(self._stamp(step).read_text())
        except (OSError, ValueError):
            return False
        return stamp.get("key") == key and output.exists() and stamp.get("digest") == output_digest(output)

    def run(self, step: str, key: str, output: Path, action: Callable[[], Any]) -> bool:
        """Run `action` (which writes `output`) unless up to date; True when it ran."""
        start = time.perf_counter()
        ran = not self.up_to_date(step, key, output)
        if ran:
            self._stamp(step).unlink(missing_ok=True)
            action()
            stamp = {"step": step, "key": key, "output": str(output), "digest": output_digest(output)}
            atomic_write_text(self._stamp(step), json.dumps(stamp, indent=2) + "\n")
        result = StepResult(step, "ran" if ran else "skipped", str(output), time.perf_counter() - start, key)
        self.results.append(result)
        if self.on_status:
            self.on_status(result)
        return ran
