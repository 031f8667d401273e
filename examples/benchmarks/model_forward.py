"""Whole-model forward table (plus its first MoE layer) per experts implementation.

    python examples/benchmarks/model_forward.py MODEL_DIR --tokens 1,8,64
    python examples/benchmarks/model_forward.py --synthetic /tmp/emo16   # writes a 2-layer EMO-width model first

The library call behind `emo-prune bench MODEL_DIR`. The synthetic model is EMO's widths (hidden 2048,
expert 1024, 16 heads) with 16 experts (15 routed + 1 shared), top-8 and 2 layers, in bf16.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from emo_prune.bench import bench_model, header, markdown_table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", nargs="?", type=Path)
    parser.add_argument("--synthetic", type=Path, help="write a synthetic EMO-width model here and use it")
    parser.add_argument("--tokens", default="1,8,64")
    parser.add_argument("--impl", default="eager,grouped_mm,emo_cpu,emo_triton")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model_dir = args.model_dir
    if args.synthetic:
        from emo_prune.testing.factory import write_tiny_model

        model_dir = write_tiny_model(
            args.synthetic,
            "emo",
            layers=2,
            hidden=2048,
            heads=16,
            kv_heads=16,
            experts=16,
            top_k=8,
            expert_width=1024,
            shared=1,
            vocab_size=512,
            dtype=torch.bfloat16,
            with_tokenizer=False,
        )
    if model_dir is None:
        parser.error("give MODEL_DIR or --synthetic DIR")
    report = bench_model(
        model_dir, tokens=[int(t) for t in args.tokens.split(",")], impls=args.impl.split(","), device=args.device
    )
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2)
    else:
        print(header(report), "\n", markdown_table(report), sep="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
