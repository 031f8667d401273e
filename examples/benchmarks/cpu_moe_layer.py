"""CPU table for one MoE experts layer: ms, GB/s, % of the measured read bandwidth, speed-up over eager.

    python examples/benchmarks/cpu_moe_layer.py                       # EMO widths, 16 experts, top-8
    python examples/benchmarks/cpu_moe_layer.py --dtype bfloat16 --tokens 1,8,64 --json
    ONEDNN_MAX_CPU_ISA=AVX2 python examples/benchmarks/cpu_moe_layer.py   # a CPU without native bf16

GB/s counts the weights of the distinct experts the routing touches, read once. Timings on a shared
machine are only meaningful when nothing else runs: --wait-idle waits for a quiet 1-minute load.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

from emo_prune.bench import bench_layer, header, markdown_table


def wait_for_idle(max_load: float = 0.3, timeout_s: float = 1800) -> None:
    deadline = time.time() + timeout_s
    while os.getloadavg()[0] > max_load and time.time() < deadline:
        time.sleep(15)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", default="1,8,64")
    parser.add_argument("--dtype", default="bfloat16,float32", help="comma-separated torch dtypes")
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--width", type=int, default=1024, help="expert intermediate width")
    parser.add_argument("--experts", type=int, default=16)
    parser.add_argument("--top-k", type=int, default=8)
    parser.add_argument("--impl", default="eager,grouped_mm,batched_mm,emo_cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="timing budget per row")
    parser.add_argument("--wait-idle", action="store_true", help="wait until the 1-minute load is < 0.3")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.wait_idle:
        wait_for_idle()
    reports = []
    for dtype in args.dtype.split(","):
        report = bench_layer(
            hidden=args.hidden,
            width=args.width,
            experts=args.experts,
            top_k=args.top_k,
            tokens=[int(t) for t in args.tokens.split(",")],
            dtype=getattr(torch, dtype),
            impls=args.impl.split(","),
            device="cpu",
            min_seconds=args.min_seconds,
        )
        reports.append(report)
        if not args.json:
            print(header(report), "\n", markdown_table(report), "\n", sep="")
    if args.json:
        json.dump([r.to_dict() for r in reports], sys.stdout, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
