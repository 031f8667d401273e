"""The README tour's commands timed one by one, quiet and beside one busy process per usable core.

    python examples/benchmarks/tour_times.py            # both conditions (about 2 minutes here)
    python examples/benchmarks/tour_times.py --quiet-only

Each command runs as README writes it, in order, in one fresh temporary folder per condition, with the
`emo-prune` of this Python's environment and no thread settings of the user's (OMP_*, GOMP_*,
EMO_PRUNE_THREADS): emo-prune's own default. "busy" = one spinning Python process per usable core,
started before the first command and stopped after the last (what other jobs on a CI runner look like).
Prints seconds per command and the total; README's tour comments carry these numbers.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def tour_commands() -> list[str]:
    block = re.search(r"### A tour on the bundled model.*?```bash\n(.*?)```", README.read_text(), re.S)
    if block is None:
        raise SystemExit(f"no tour block in {README}")
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def spin(stop) -> None:  # noqa: ANN001 (multiprocessing.Event)
    while not stop.is_set():
        pass


def timed(label: str, commands: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_", "MKL_", "EMO_PRUNE_THREADS"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    with tempfile.TemporaryDirectory(prefix="emo-prune-tour-") as folder:
        rows = []
        for command in commands:
            started = time.perf_counter()
            done = subprocess.run(["bash", "-c", command], cwd=folder, env=env, capture_output=True, text=True)
            rows.append((time.perf_counter() - started, done.returncode, command))
    print(label)
    for seconds, code, command in rows:
        print(f"  {seconds:6.1f} s  exit {code}  {command[:90]}")
    print(f"  total {sum(r[0] for r in rows):.1f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quiet-only", action="store_true", help="skip the busy condition")
    args = parser.parse_args(argv)
    commands = tour_commands()
    timed("quiet", commands)
    if args.quiet_only:
        return 0
    stop = multiprocessing.Event()
    spinners = [multiprocessing.Process(target=spin, args=(stop,)) for _ in os.sched_getaffinity(0)]
    for p in spinners:
        p.start()
    time.sleep(1)
    try:
        timed("busy (one spinning process per usable core)", commands)
    finally:
        stop.set()
        for p in spinners:
            p.join()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
