"""Thread settings on a quiet machine and under one competing busy process per core (issue 25).

    python examples/benchmarks/threads_benchmark.py                 # the whole table (tens of minutes)
    python examples/benchmarks/threads_benchmark.py --rounds 1 --only pool-index
    python examples/benchmarks/threads_benchmark.py --dry-run       # print the commands, run nothing

Workloads, each in a fresh `emo-prune` process (a fresh OpenMP runtime, as a user gets):
  run         `emo-prune run quickstart --out TMP` (profile, 2 builds, verify, eval), from scratch each time
  pool-index  `emo-prune pool-index builtin:emo-small --max-pairs 100 --out TMP.safetensors`
Settings: the default (no flag, no EMO_PRUNE_THREADS, no OMP_*: emo-prune's own choice), `--threads 1`,
`--threads 2`, and "spin 3ms" (the default thread count with OpenMP's own wait, as before the passive
policy: measures whether the passive wait helps). Conditions: quiet, and "busy" = one spinning Python process per usable core started
before and stopped after each timing (what other jobs on a CI runner or a laptop look like).

Prints one table: seconds (best of --rounds) and each setting's ratio to the best setting of the same
workload and condition. Target: busy, the default within 1.5x of the best; quiet, no slower than before.
The settings alternate within a round so that drifting load hits all alike.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# setting -> (flags, environment added). "spin 3ms" is the OpenMP wait of emo-prune before issue 25
# (libgomp's default when OMP_WAIT_POLICY is unset: spin ~300k iterations, about 3 ms, then sleep);
# GOMP_SPINCOUNT overrides the spin count that emo-prune's OMP_WAIT_POLICY=PASSIVE sets to zero.
SETTINGS: dict[str, tuple[list[str], dict[str, str]]] = {
    "default": ([], {}),
    "--threads 1": (["--threads", "1"], {}),
    "--threads 2": (["--threads", "2"], {}),
    "spin 3ms": ([], {"GOMP_SPINCOUNT": "300000"}),
}


def workloads(tmp: Path) -> dict[str, list[str]]:
    return {
        "run": ["run", "quickstart", "--out", str(tmp / "run")],
        "pool-index": ["pool-index", "builtin:emo-small", "--max-pairs", "100", "--out", str(tmp / "index.safetensors")],
    }


def clean_environment(extra: dict[str, str]) -> dict[str, str]:
    """The user's environment less every thread setting (so `default` is emo-prune's own choice), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_", "MKL_", "EMO_PRUNE_THREADS"))}
    env["TQDM_DISABLE"] = "1"
    return env | extra


def spin(stop) -> None:
    while not stop.is_set():
        pass


class Busy:
    """One spinning process per usable core while the block runs."""

    def __init__(self, on: bool):
        self.on, self.procs, self.stop = on, [], multiprocessing.Event()

    def __enter__(self) -> Busy:
        if self.on:
            for _ in range(len(os.sched_getaffinity(0))):
                p = multiprocessing.Process(target=spin, args=(self.stop,), daemon=True)
                p.start()
                self.procs.append(p)
            time.sleep(0.5)  # let them occupy the cores before the timing starts
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for p in self.procs:
            p.join(timeout=5)


def seconds(cmd: list[str], env: dict[str, str], tmp: Path) -> float:
    for child in tmp.iterdir():  # every timing starts from nothing (run resumes finished steps otherwise)
        shutil.rmtree(child) if child.is_dir() else child.unlink()
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=clean_environment(env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="timings per cell; the best is kept")
    parser.add_argument("--only", choices=("run", "pool-index"), help="one workload")
    parser.add_argument("--conditions", default="quiet,busy", help="quiet, busy or both (comma-separated)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and exit")
    args = parser.parse_args()
    exe = [sys.executable, "-c", "from emo_prune.cli import main; main()"]
    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="emo-prune-threads-") as name:
        tmp = Path(name)
        jobs = {k: v for k, v in workloads(tmp).items() if args.only in (None, k)}
        if args.dry_run:
            for label, work in jobs.items():
                for setting, (flags, env) in SETTINGS.items():
                    print(
                        f"{label:10s} {setting:12s} {' '.join(f'{k}={v}' for k, v in env.items())} {' '.join(exe + work + flags)}"
                    )
            return
        best: dict[tuple[str, str, str], float] = {}
        for condition in conditions:
            for label, work in jobs.items():
                for _ in range(args.rounds):
                    for setting, (flags, env) in SETTINGS.items():
                        with Busy(condition == "busy"):
                            t = seconds(exe + work + flags, env, tmp)
                        key = (condition, label, setting)
                        best[key] = min(best.get(key, float("inf")), t)
                        print(f"  {condition} {label} {setting}: {t:.1f} s", file=sys.stderr, flush=True)
    print(f"usable cores: {cores}; busy = {cores} spinning processes; best of {args.rounds}")
    print(f"{'condition':9s} {'workload':10s} " + " ".join(f"{s:>17s}" for s in SETTINGS))
    for condition in conditions:
        for label in jobs:
            row = {s: best[(condition, label, s)] for s in SETTINGS}
            fastest = min(row.values())
            cells = " ".join(f"{row[s]:8.1f}s ({row[s] / fastest:4.2f}x)" for s in SETTINGS)
            print(f"{condition:9s} {label:10s} {cells}")


if __name__ == "__main__":
    main()
