"""How many CPU threads torch uses, decided once per process, in this module only.

The rule (issue 25, measured on a 2-core machine that other jobs also used):
  - threads = `--threads N`, else `EMO_PRUNE_THREADS`, else `OMP_NUM_THREADS`, else the cores this process may run on
    (`os.sched_getaffinity`: a CI runner's cgroup or `taskset` counts, the machine's total does not);
  - OpenMP waits passively (`OMP_WAIT_POLICY=PASSIVE`) unless the user set a policy: a worker that has
    no work sleeps instead of spinning. Spinning threads compete with the other processes for the cores
    they need: `eval --limit 16` took 69 s with two busy processes on the 2 cores, 14 s passive, 15 s
    with one thread (quiet: 8 s either way). Measured again with this rule on a 2-core machine under
    load 5-6.7 from other jobs: passive default 29.5 / 26.5 / 27.3 s, libgomp's own wait
    (GOMP_SPINCOUNT=300000, what emo-prune had before) 52.4 / 40.4 s, `--threads 1` 27.6 s.
    See examples/benchmarks/threads_benchmark.py. Quiet, passive waiting costs 1.6-2.2x on the bundled
    model's small operations (examples/benchmarks/threads_results.md): not settled yet.
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

from emo_prune.errors import RuntimeSetupError

THREADS_ENV = "EMO_PRUNE_THREADS"
_applied: int | None = None  # what apply_threads set in this process
WAIT_POLICY_ENV = "OMP_WAIT_POLICY"


def usable_cores() -> int:
    """Cores this process may run on now (affinity mask, cgroup cpusets through it); >= 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows: no affinity API
        return max(1, os.cpu_count() or 1)


def prepare_environment() -> None:
    """Before torch loads: OpenMP threads sleep when idle (unless the user chose a policy)."""
    if "torch" in sys.modules:
        return  # too late for libgomp to read it; an in-process caller keeps its own setting
    os.environ.setdefault(WAIT_POLICY_ENV, "PASSIVE")


def parse_threads(text: str, where: str) -> int:
    """A thread count as a user writes it ("2"); RuntimeSetupError naming `where` otherwise."""
    try:
        count = int(str(text).strip())
    except ValueError:
        count = 0
    if count < 1:
        raise RuntimeSetupError(f"{where} {text!r} is not a thread count; give a whole number >= 1 (e.g. {where} {usable_cores()})")
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
