"""How fast the CLI starts, against `python -c "import torch"` measured in the same run.

    python examples/benchmarks/startup_benchmark.py              # best of 5 of each
    python examples/benchmarks/startup_benchmark.py --rounds 3

Times, each in a fresh interpreter (best of --rounds, alternating so load on a shared machine hits
all alike):
  import torch            the baseline: `python -c "import torch"`
  --version               `emo-prune --version`            target: < 0.5x the baseline
  --help                  `emo-prune --help`
  inspect 27 GB           `emo-prune inspect DIR` of a release-shaped EMO checkpoint (vocab 100352,
                          hidden 2048, 16 layers, 128 experts of width 1024, 1 shared; 27 GB in bf16)
                          whose weights are sparse holes: real safetensors headers, no disk used.
                          target: < 1 s
  select --method mass    `emo-prune select builtin:emo-small --profile P --domain code --keep 0.25`
                          from a profile made before the timing (numpy only: no torch)
Prints seconds and the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RELEASE = dict(
    layers=16, hidden=2048, heads=16, kv_heads=16, experts=128, top_k=8, expert_width=1024, shared=1, vocab_size=100352
)


def seconds(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from emo_prune.io import Checkpoint
    from emo_prune.models.builtin import resolve_model
    from emo_prune.profile import ProfileSettings, profile_to_file
    from emo_prune.testing.factory import write_large_emo

    cli = shutil.which("emo-prune")
    emo = [cli] if cli else [sys.executable, "-c", "from emo_prune.cli import main; main()"]
    with tempfile.TemporaryDirectory(prefix="emo-startup-") as tmp:
        model = write_large_emo(Path(tmp) / "release-shaped", sparse=True, max_shard_size="5GB", **RELEASE)
        size = Checkpoint.open(model).total_bytes / 1e9
        profile = Path(tmp) / "code.safetensors"
        profile_to_file(
            resolve_model("builtin:emo-small"), ["builtin:code:calib"], profile, settings=ProfileSettings(max_tokens=2000)
        )
        plan = Path(tmp) / "plan.json"
        select = ["select", "builtin:emo-small", "--profile", str(profile), "--domain", "code", "--keep", "0.25"]
        cases = {
            "import torch": [sys.executable, "-c", "import torch"],
            "emo-prune --version": [*emo, "--version"],
            "emo-prune --help": [*emo, "--help"],
            f"emo-prune inspect ({size:.1f} GB headers)": [*emo, "inspect", str(model)],
            "emo-prune select --method mass": [*emo, *select, "--out", str(plan)],
        }
        best = {name: float("inf") for name in cases}
        for _ in range(args.rounds):
            for name, cmd in cases.items():
                best[name] = min(best[name], seconds(cmd))
    base = best["import torch"]
    print(f"{'command':<40} {'best s':>8} {'x import torch':>15}")
    for name, value in best.items():
        print(f"{name:<40} {value:>8.3f} {value / base:>15.2f}")


if __name__ == "__main__":
    main()
