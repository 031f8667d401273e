"""GPU table for one MoE experts layer (bf16): emo_triton against transformers' implementations.

    python examples/benchmarks/gpu_moe_layer.py                     # EMO widths, E = 16 and 128, top-8
    python examples/benchmarks/gpu_moe_layer.py --experts 128 --tokens 1,64,4096 --json

Targets (docs/kernels.md, H100): 1 token <= 45 us per layer incl. routing; 8-64 tokens >= 75%
of the HBM roofline (the % of read BW column); 4096 tokens >= 450 TFLOP/s; never slower than the
best transformers implementation. Not measured yet: no GPU was available when this was written.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from emo_prune.bench import bench_layer, bench_routing, header, markdown_table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", default="1,8,64,512,4096")
    parser.add_argument("--experts", default="16,128", help="comma-separated expert counts")
    parser.add_argument("--top-k", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--impl", default="eager,grouped_mm,batched_mm,emo_triton")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: run examples/benchmarks/cpu_moe_layer.py on CPUs", file=sys.stderr)
        return 1
    reports = []
    for experts in (int(e) for e in args.experts.split(",")):
        report = bench_layer(
            hidden=args.hidden,
            width=args.width,
            experts=experts,
            top_k=args.top_k,
            tokens=[int(t) for t in args.tokens.split(",")],
            dtype=getattr(torch, args.dtype),
            impls=args.impl.split(","),
            device="cuda",
        )
        report.rows += bench_routing(report.settings["tokens"], experts, args.top_k, num_shared=1, device="cuda")
        reports.append(report)
        if not args.json:
            print(header(report), "\n", markdown_table(report), "\n", sep="")
    if args.json:
        json.dump([r.to_dict() for r in reports], sys.stdout, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
