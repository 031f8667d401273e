"""Peak memory of `--layerwise` profiling is independent of depth (issue 3: 8 layers <= 1.3x of 2 layers).

Writes two synthetic EMO checkpoints of the same width where expert weights dominate (defaults: hidden
512, 32 experts of width 1024, top-4 with 1 shared expert; 2 and 8 layers, bfloat16 on disk in
200 MB shards), then profiles each in a fresh subprocess and reads the subprocess's peak RSS from
/proc/self/status VmHWM (not ru_maxrss: Linux carries ru_maxrss across fork+exec, so it would report
this parent's peak from building the models). The ordinary (whole model in memory) path is measured
too, for scale.

    python examples/benchmarks/profile_layerwise_memory.py [--hidden 512 --experts 32 --width 1024 --tokens 2048]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
import torch
from emo_prune.calib import load_documents
from emo_prune.process.memory import peak_rss_bytes
from emo_prune.profile.runner import ProfileSettings, profile_model
model_dir, layerwise, tokens = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])
docs = load_documents(["builtin:math", "builtin:prose"])
start = time.perf_counter()
profile = profile_model(model_dir, docs, ProfileSettings(max_tokens=tokens, seq_len=256, batch_size=8,
                                                         device="cpu", dtype="float32", layerwise=layerwise))
print(json.dumps({"peak_mib": peak_rss_bytes() / 2**20, "seconds": time.perf_counter() - start,
                  "tokens": sum(d.num_tokens for d in profile.domains.values())}))
"""


def measure(model_dir: Path, layerwise: bool, tokens: int) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(model_dir), "1" if layerwise else "0", str(tokens)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--experts", type=int, default=32)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--tokens", type=int, default=2048, help="calibration tokens per domain (2 domains)")
    parser.add_argument("--depths", type=int, nargs=2, default=(2, 8))
    args = parser.parse_args()

    import torch

    from emo_prune.testing import write_tiny_model

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for layers in args.depths:
            model_dir = write_tiny_model(
                Path(tmp) / f"emo-{layers}",
                "emo",
                layers=layers,
                hidden=args.hidden,
                heads=8,
                kv_heads=8,
                experts=args.experts,
                expert_width=args.width,
                top_k=4,
                shared=1,
                dtype=torch.bfloat16,
                max_shard_size="200MB",
            )
            disk = sum(p.stat().st_size for p in model_dir.glob("*.safetensors"))
            for layerwise in (True, False):
                m = measure(model_dir, layerwise, args.tokens)
                rows.append((layers, "layerwise" if layerwise else "whole model", disk, m))
                print(
                    f"{layers} layers ({disk / 1e6:.0f} MB bf16 on disk, {4 * disk / 2e6:.0f} MB as fp32): "
                    f"{rows[-1][1]:11s} peak RSS {m['peak_mib']:7.0f} MiB, {m['seconds']:.1f} s, {m['tokens']} tokens",
                    flush=True,
                )
    lw = {layers: m["peak_mib"] for layers, kind, _, m in rows if kind == "layerwise"}
    shallow, deep = args.depths
    print(f"layerwise peak RSS, {deep} vs {shallow} layers: {lw[deep] / lw[shallow]:.2f}x (target <= 1.3x)")


if __name__ == "__main__":
    main()
