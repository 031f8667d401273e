"""Peak memory of `finetune` and `merge-back` where the weights dominate: the targets of docs/finetune.md.

    python examples/benchmarks/finetune_memory.py                     # 8-layer model; merge-back at 4, 8, 16 layers
    python examples/benchmarks/finetune_memory.py --layers 8 --merge-layers 4 8 16 32

Writes synthetic EMO checkpoints in AI2's per-expert layout (`write_large_emo`, float32: hidden 512, 64
experts of width 512, top-8, 100 MB shards; 8 layers = 1.6 GB; random weights, nothing is judged on
them) into a temporary folder and cuts a 12.5% build of each (`extract --keep 0.125 --method random`:
8 of 64 experts). Then every command runs as the CLI in its own process, and its peak RSS is read from
that process's own /proc/self/status VmHWM:
  finetune FULL          every weight trained, AdamW, 2 optimizer steps (`--batch-size 2 --seq-len 16
                         --max-tokens 64` of a small text file): the baseline
  finetune BUILD         the same on the 12.5% build (target <= 0.35x the baseline)
  finetune BUILD --lora  `--lora 8 --train experts+shared` (target: lower still)
  merge-back FULL BUILD --all, for each model depth: streamed, so its peak should not grow with the model
A process that only imports torch, transformers, peft and the two commands' modules gives the fixed overhead every row carries.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SIZES = dict(hidden=512, experts=64, top_k=8, expert_width=512)
TEXT = "def add(a, b):\n    return a + b\n\nclass Point:\n    x: int\n    y: int\n" * 40
IMPORTS = "import torch, transformers, peft, emo_prune.train.finetune, emo_prune.train.merge_back"
# the CLI in a fresh interpreter that writes its own peak RSS (bytes, VmHWM) to the file argv[1] when it exits; not
# ru_maxrss, which Linux carries across fork+exec: it would report at least this script's own peak
CHILD = """
import atexit, sys
from emo_prune.process.memory import peak_rss_bytes
def peak():
    open(report, "w").write(str(peak_rss_bytes()))
report, sys.argv = sys.argv[1], ["emo-prune", *sys.argv[2:]]
atexit.register(peak)
if sys.argv[1:] == ["--imports-only"]:
    exec(IMPORTS)
else:
    from emo_prune.cli import main
    main()
""".replace("IMPORTS", repr(IMPORTS))


def peak_rss(*args: str) -> int:
    """Run `emo-prune ARGS` (or only the imports: `--imports-only`) in a fresh process; its peak RSS in bytes."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "peak"
        done = subprocess.run([sys.executable, "-c", CHILD, str(report), *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"emo-prune {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return int(report.read_text())


def write_model(tmp: Path, layers: int) -> tuple[Path, Path, int]:
    """FULL of `layers` layers and its 12.5% build; FULL's size in bytes."""
    import torch

    from emo_prune.io import Checkpoint
    from emo_prune.testing.factory import write_large_emo

    full = write_large_emo(tmp / f"emo-{layers}", layers=layers, dtype=torch.float32, max_shard_size="100MB", **SIZES)
    build = tmp / f"emo-{layers}-12.5"
    peak_rss("extract", str(full), "--keep", "0.125", "--method", "random", "--out", str(build))
    return full, build, Checkpoint.open(full).total_bytes


def gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=8, help="depth of the model the fine-tuning rows use")
    parser.add_argument("--merge-layers", type=int, nargs="+", default=[4, 8, 16], help="depths merge-back runs at")
    args = parser.parse_args()
    base = peak_rss("--imports-only")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        text = tmp / "calib.txt"
        text.write_text(TEXT)
        steps = ["--calib", str(text), "--batch-size", "2", "--seq-len", "16", "--max-tokens", "64"]
        models = {layers: write_model(tmp, layers) for layers in sorted({args.layers, *args.merge_layers})}
        full, build, size = models[args.layers]
        rows = [
            ("finetune FULL", peak_rss("finetune", str(full), *steps, "--out", str(tmp / "full-ft"))),
            ("finetune BUILD", peak_rss("finetune", str(build), *steps, "--out", str(tmp / "build-ft"))),
            (
                "finetune BUILD --lora 8 --train experts+shared",
                peak_rss(
                    "finetune", str(build), *steps, "--lora", "8", "--train", "experts+shared", "--out", str(tmp / "lora-ft")
                ),
            ),
        ]
        merges = []
        for layers, (full_l, build_l, size_l) in models.items():
            out = tmp / f"merged-{layers}"
            merges.append((layers, size_l, peak_rss("merge-back", str(full_l), str(build_l), "--all", "--out", str(out))))
            shutil.rmtree(out)  # keep the disk small: only the peak is measured
    baseline = rows[0][1]
    print(
        f"import-only RSS (torch, transformers, peft, emo_prune.train): {gb(base)}; fine-tuning on the {args.layers}-layer model ({gb(size)} float32)"
    )
    print(f"{'command':<50}{'peak RSS':>10}{'x FULL':>8}")
    for label, peak in rows:
        print(f"{label:<50}{gb(peak):>10}{peak / baseline:>8.2f}")
    print(f"\n{'merge-back FULL BUILD --all':<30}{'model':>10}{'peak RSS':>10}{'minus import':>14}{'RSS/model':>11}")
    for layers, size_l, peak in merges:
        print(f"{f'{layers} layers':<30}{gb(size_l):>10}{gb(peak):>10}{gb(peak - base):>14}{peak / size_l:>11.2f}")


if __name__ == "__main__":
    main()
