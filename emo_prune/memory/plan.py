"""Before loading: does the whole model fit, and if not, does the layer-by-layer path?

The budget is, in this order: an explicit `--max-memory` (e.g. "24GB"), the EMO_PRUNE_MAX_MEMORY
environment variable, or what the machine has free: for CUDA the device's free memory, for the CPU
`MemAvailable` of /proc/meminfo, lowered to the cgroup's limit minus its usage where one is set.

`choose_path` takes the command's estimates (`emo_prune.memory.estimate`). "auto" runs the whole
model when it fits and the layerwise path otherwise, saying so in one line (an `events.note`); when
neither fits it refuses with the numbers. Commands whose layerwise path is a stream that is no slower than the whole
model (`lean=True`: profile, verify and greedy selection read each layer once and push every batch
through it; measured on CPU at 0.86x, 0.54x and 0.34x the whole model's time, examples/benchmarks/memory_benchmark.py)
take the path with the smaller estimate instead, and speak only when the whole model would not fit.
Eval's layerwise path (disk offload) is slower, so eval keeps the whole model when it fits. A forced
path ("whole", "layerwise") runs as asked; when its estimate is over the budget, the line says that too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from emo_prune import events
from emo_prune.common.units import rough_bytes
from emo_prune.errors import ConfigError, InsufficientMemoryError
from emo_prune.memory.estimate import Estimate

ENV = "EMO_PRUNE_MAX_MEMORY"
PATHS = ("auto", "whole", "layerwise")


@dataclass(frozen=True)
class Budget:
    bytes: int
    source: str  # where the number comes from, for messages

    def describe(self) -> str:
        return f"{rough_bytes(self.bytes)} ({self.source})"


def _parse(value: str | int, what: str) -> int:
    from emo_prune.errors import OutputError
    from emo_prune.io.sizes import parse_size

    try:
        return parse_size(value)
    except OutputError:
        raise ConfigError(f"{what} {value!r} is not a size; write it like 24GB or 512MiB") from None


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_room() -> int | None:
    """Limit minus usage of this process's cgroup (v2), when it sets a limit."""
    root = Path("/sys/fs/cgroup")
    try:
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int((root / "memory.current").read_text().strip())
    except (OSError, ValueError):
        return None


def available(device: str = "cpu", max_memory: str | int | None = None) -> Budget:
    """The memory one command may use on `device` (see the module docstring)."""
    if max_memory is not None:
        return Budget(_parse(max_memory, "--max-memory"), "--max-memory")
    if os.environ.get(ENV):
        return Budget(_parse(os.environ[ENV], ENV), ENV)
    if str(device).startswith("cuda"):
        import torch

        index = torch.device(device).index or 0
        free, _ = torch.cuda.mem_get_info(index)
        return Budget(int(free), f"free on cuda:{index}")
    room = [n for n in (_meminfo_available(), _cgroup_room()) if n is not None]
    if not room:
        return Budget(1 << 62, "unknown: no /proc/meminfo")
    return Budget(min(room), "available RAM")


@dataclass(frozen=True)
class Choice:
    path: str  # "whole" | "layerwise"
    estimate: Estimate
    budget: Budget
    message: str | None  # one line for the user, None when there is nothing to say


def choose_path(
    command: str,
    estimates: dict[str, Estimate],
    budget: Budget,
    path: str = "auto",
    *,
    lean: bool = False,
) -> Choice:
    """The path `command` takes under `budget`; raises InsufficientMemoryError when nothing fits.
    `lean`: auto takes the smaller estimate (see the module docstring)."""
    if path not in PATHS:
        raise ConfigError(f"unknown memory path {path!r} (known: {', '.join(PATHS)})")
    whole, layerwise = estimates["whole"], estimates["layerwise"]
    if path == "auto":
        if lean and whole.total <= budget.bytes and whole.total > layerwise.total:
            choice = Choice("layerwise", layerwise, budget, None)
        elif whole.total <= budget.bytes:
            choice = Choice("whole", whole, budget, None)
        elif layerwise.total <= budget.bytes:
            message = (
                f"{command}: the whole model needs about {rough_bytes(whole.total)}, {budget.describe()}: "
                f"running layer by layer (about {rough_bytes(layerwise.total)}; slower)"
            )
            choice = Choice("layerwise", layerwise, budget, message)
        else:
            raise InsufficientMemoryError(
                f"{command} does not fit in {budget.describe()}: the whole model needs about {whole.describe()}, "
                f"layer by layer about {layerwise.describe()}; free memory, lower --batch-size / --seq-len, "
                f"or set the budget with --max-memory / {ENV} if this estimate is too cautious"
            )
    else:
        estimate = estimates[path]
        message = None
        if estimate.total > budget.bytes:
            message = f"{command}: --{path} needs about {estimate.describe()}, more than {budget.describe()}; running it as asked"
        choice = Choice(path, estimate, budget, message)
    if choice.message is not None:
        events.note(choice.message)
    return choice


@dataclass(frozen=True)
class MemoryOptions:
    """How a command picks its path: `path` auto / whole / layerwise, `max_memory` the budget (see `available`)."""

    path: str = "auto"
    max_memory: str | int | None = None


def plan_memory(
    command: str,
    checkpoints: list,
    dtype,
    work,
    options: MemoryOptions = MemoryOptions(),
    device: str = "cpu",
    *,
    together: bool = False,
    lean: bool = False,
) -> Choice:
    """Estimate `work` on `checkpoints` (emo_prune.memory.estimate.estimates) and choose a path for it."""
    from emo_prune.memory.estimate import estimates

    found = estimates(checkpoints, dtype, work, together=together)
    return choose_path(command, found, available(device, options.max_memory), options.path, lean=lean)
