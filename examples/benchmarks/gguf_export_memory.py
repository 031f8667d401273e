"""Peak memory of `emo-prune export` on EMO checkpoints of several GB: it streams, so it stays flat.

    python examples/benchmarks/gguf_export_memory.py                  # 8 and 32 layers (~1.7 and ~6.6 GB bf16)
    python examples/benchmarks/gguf_export_memory.py --layers 12 48 --dtype q8_0

Writes synthetic EMO checkpoints in AI2's layout (hidden 1024, 32 experts of width 1024, 1 shared,
random weights: nothing is judged on them) into a temporary folder, then runs `emo-prune export` in a
subprocess per checkpoint and reads its peak RSS from getrusage(RUSAGE_CHILDREN), next to the RSS of a
subprocess that only imports the exporter (the fixed overhead) and the largest single tensor the export
holds (one layer's stacked experts in fp32). Prints peak RSS as a ratio of the source size: it should
not grow with depth.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import json, resource, sys, time
from emo_prune.export import export_gguf
start = time.perf_counter()
if len(sys.argv) > 1:
    r = export_gguf(sys.argv[1], sys.argv[2], dtype=sys.argv[3])
    size = r.bytes
else:
    size = 0
print(json.dumps({"seconds": time.perf_counter() - start, "bytes": size}))
"""


def child(*args: str) -> tuple[dict, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    done = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB, max over children so far
    return json.loads(done.stdout.strip().splitlines()[-1]), max(peak, before) * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--dtype", default="f16")
    args = parser.parse_args()
    from emo_prune.io import Checkpoint
    from emo_prune.testing.factory import write_large_emo

    _, base_rss = child()  # import only: measured first, so RUSAGE_CHILDREN's max is this one
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for layers in sorted(args.layers):  # deeper last: RUSAGE_CHILDREN keeps the max so far
            source = write_large_emo(
                Path(tmp) / f"emo-{layers}", layers=layers, hidden=1024, heads=8, kv_heads=8, experts=32,
                expert_width=1024, top_k=8, shared=1, max_shard_size="2GB",
            )  # fmt: skip
            size = Checkpoint.open(source).total_bytes
            start = time.perf_counter()
            result, peak = child(str(source), str(Path(tmp) / f"emo-{layers}.gguf"), args.dtype)
            rows.append((layers, size, result["bytes"], peak, time.perf_counter() - start))
            (Path(tmp) / f"emo-{layers}.gguf").unlink()
    stack = 31 * 1024 * 1024 * 4  # one [E-1, I, H] fp32 expert stack, the largest tensor held
    print(
        f"export --dtype {args.dtype}; import-only RSS {base_rss / 1e9:.2f} GB; largest tensor held {stack / 1e9:.2f} GB (fp32)"
    )
    print(f"{'layers':>6}{'source':>10}{'gguf':>10}{'peak RSS':>10}{'RSS/source':>12}{'seconds':>9}")
    for layers, size, out, peak, seconds in rows:
        print(f"{layers:>6}{size / 1e9:>8.2f}GB{out / 1e9:>8.2f}GB{peak / 1e9:>8.2f}GB{peak / size:>12.2f}{seconds:>9.1f}")


if __name__ == "__main__":
    main()
