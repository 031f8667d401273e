"""How many CPU threads torch uses, decided once per process, in this module only.

The rule (issue 25, measured on a 2-core machine that other jobs also used):
  - threads = `--threads N`, else `EMO_PRUNE_THREADS`, else `OMP_NUM_THREADS`, else the cores this process may run on
    (`os.sched_getaffinity`: a CI runner's cgroup or `taskset` counts, the machine's total does not);
  - OpenMP's wait follows the load the machine has when the command starts (unless the user set
    OMP_WAIT_POLICY or GOMP_SPINCOUNT). Idle OpenMP workers either spin for a few ms (libgomp's own
    default) or sleep at once (`OMP_WAIT_POLICY=PASSIVE`); neither fits every machine
    (examples/benchmarks/results/threads_benchmark.md, 2 cores): with one busy process per core, spinning made
    `run quickstart` 3.4x and `pool-index` 2.2x slower than sleeping; on a quiet machine, sleeping made
    them 1.6x and 2.2x slower than spinning. So the CLI samples the usable cores from its first import
    to the command body (>= LOAD_WINDOW_S, usually the CLI's own start-up): when other processes keep
    BUSY_CORES or more of them busy, workers sleep; otherwise they spin as libgomp does by default.
    Load that starts after that look is not seen (stated in docs/threads.md).
  - intra-op threads (`torch.set_num_threads`) = threads; inter-op threads (`set_num_interop_threads`,
    which torch accepts once per process, before any inter-op work) = the same count. When torch is
    not loaded yet, OMP_NUM_THREADS / MKL_NUM_THREADS carry the count to it instead (see apply_threads).

`prepare_environment` must run before torch is first imported: libgomp reads OMP_* when it loads.
The CLI calls it when `emo_prune.cli.app` is imported (which imports no torch) and `apply_threads`
before each command body (`cli.app.command`, for every command that declares `--threads`). This is a
top-level module, not part of `runtime/`, because importing `emo_prune.runtime` loads torch (it
registers the experts implementations), which would be too late for the wait policy.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

from emo_prune import events
from emo_prune.errors import RuntimeSetupError

THREADS_ENV = "EMO_PRUNE_THREADS"
_applied: int | None = None  # what apply_threads set in this process
WAIT_POLICY_ENV = "OMP_WAIT_POLICY"
USER_WAIT_SETTINGS = (WAIT_POLICY_ENV, "GOMP_SPINCOUNT")  # a user who set either keeps it
LOAD_WINDOW_S = 0.1  # the shortest look at the cores' load before deciding the wait
BUSY_CORES = 0.5  # cores kept busy by other processes from which idle OpenMP workers sleep


@dataclass(frozen=True)
class CpuSample:
    """Where the usable cores and this process stood at one moment (from /proc/stat and os.times)."""

    wall_s: float
    cores_busy_s: float  # non-idle seconds summed over the usable cores since boot
    own_cpu_s: float  # this process's CPU seconds (every thread)


_load_start: CpuSample | None = None  # set by prepare_environment while the wait is still ours to choose
wait_decision: str = "not decided"  # what decide_wait_policy chose and why (for --debug and tests)


def usable_cores() -> int:
    """Cores this process may run on now (affinity mask, cgroup cpusets through it); >= 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows: no affinity API
        return max(1, os.cpu_count() or 1)


def sample_cpu() -> CpuSample | None:
    """The usable cores' busy time and this process's CPU time now; None without /proc/stat (macOS, Windows)."""
    try:
        cores = os.sched_getaffinity(0)
        with open("/proc/stat", encoding="ascii") as stat:
            lines = stat.read().splitlines()
    except (AttributeError, OSError):
        return None
    busy_ticks = 0
    for line in lines:  # "cpuN user nice system idle iowait irq softirq steal ..." in clock ticks
        fields = line.split()
        if fields and fields[0].startswith("cpu") and fields[0][3:].isdigit() and int(fields[0][3:]) in cores:
            ticks = [int(v) for v in fields[1:9]]
            busy_ticks += sum(ticks) - ticks[3] - ticks[4]  # less idle and iowait
    own = os.times()
    return CpuSample(time.monotonic(), busy_ticks / os.sysconf("SC_CLK_TCK"), own.user + own.system)


def others_load(start: CpuSample, end: CpuSample) -> float:
    """Cores that other processes kept busy between two samples (this process's own work taken out)."""
    elapsed = end.wall_s - start.wall_s
    if elapsed <= 0:
        return 0.0
    return max(0.0, (end.cores_busy_s - start.cores_busy_s) - (end.own_cpu_s - start.own_cpu_s)) / elapsed


def prepare_environment() -> None:
    """Before torch loads: idle OpenMP workers sleep (the safe choice under load) until
    `decide_wait_policy` has seen the machine; the user's own OMP_WAIT_POLICY / GOMP_SPINCOUNT win."""
    global _load_start, wait_decision
    if wait_decision != "not decided":
        return  # already prepared in this process
    if "torch" in sys.modules:
        return  # too late for libgomp to read it; an in-process caller keeps its own setting
    if any(name in os.environ for name in USER_WAIT_SETTINGS):
        wait_decision = "the user's OMP_WAIT_POLICY / GOMP_SPINCOUNT"
        return
    os.environ[WAIT_POLICY_ENV] = "PASSIVE"
    _load_start = sample_cpu()
    wait_decision = "passive (the load not measured yet)"


def decide_wait_policy() -> None:
    """Once, before torch loads: OpenMP's own spin on a quiet machine, the passive wait on a busy one."""
    global _load_start, wait_decision
    if _load_start is None or "torch" in sys.modules:
        return
    start, _load_start = _load_start, None
    time.sleep(max(0.0, start.wall_s + LOAD_WINDOW_S - time.monotonic()))
    end = sample_cpu()
    if end is None:
        return
    load = others_load(start, end)
    if load < BUSY_CORES:
        os.environ.pop(WAIT_POLICY_ENV, None)
        wait_decision = f"spin (OpenMP's default): other processes kept {load:.2f} cores busy"
    else:
        wait_decision = f"passive: other processes kept {load:.2f} cores busy"


def parse_threads(text: str, where: str) -> int:
    """A thread count as a user writes it ("2"); RuntimeSetupError naming `where` otherwise."""
    try:
        count = int(str(text).strip())
    except ValueError:
        count = 0
    if count < 1:
        raise RuntimeSetupError(
            f"{where} {text!r} is not a thread count; give a whole number >= 1 (e.g. {where} {usable_cores()})"
        )
    return count


def resolve_threads(flag: int | None) -> tuple[int, str]:
    """The thread count and where it came from: the flag, then EMO_PRUNE_THREADS, then OMP_NUM_THREADS
    (a user's own OpenMP setting), then the usable cores."""
    if flag is not None:
        return parse_threads(str(flag), "--threads"), "--threads"
    for name in (THREADS_ENV, "OMP_NUM_THREADS"):
        env = os.environ.get(name, "").strip()
        if env:
            return parse_threads(env, name), name
    return usable_cores(), "the cores this process may use"


def current_threads() -> int:
    """The count this process runs with: what apply_threads set, else the rule's default. llama.cpp
    (quantizer, GGUF evaluation) takes it too, so `--threads` bounds every thread pool we start."""
    return _applied if _applied is not None else resolve_threads(None)[0]


def apply_threads(flag: int | None) -> int:
    """Set torch's intra-op and inter-op thread counts for this process; returns the count used.

    Before torch is loaded (the CLI: commands import it in their bodies, and `select` / `extract --plan`
    never do), this imports nothing: OMP_NUM_THREADS and MKL_NUM_THREADS are set, which torch reads for
    its intra-op pool when it loads (its inter-op pool, used by no emo-prune code, keeps torch's size)."""
    global _applied
    count, _ = resolve_threads(flag)
    _applied = count
    decide_wait_policy()
    if events.debugging():
        events.note(f"threads: {count} ({resolve_threads(flag)[1]}); OpenMP wait: {wait_decision}")
    if "torch" not in sys.modules:
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(count)
        return count
    import torch

    torch.set_num_threads(count)
    try:
        if torch.get_num_interop_threads() != count:
            torch.set_num_interop_threads(count)
    except RuntimeError:
        pass  # inter-op work already ran in this process (an in-process caller): torch keeps its pool
    return count
