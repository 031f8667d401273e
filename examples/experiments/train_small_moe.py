"""Train the two small bundled MoE models: EMO objective and its standard-MoE twin.

    python examples/experiments/train_small_moe.py                       # both, into emo_prune/assets/models/
    python examples/experiments/train_small_moe.py --objective emo --steps 100 --out /tmp/try

Same data, seed, sizes and steps for both; they differ only in the objective (emo_prune/train/
objective.py). The tokenizer is trained first on the same mixture and shared by both models.
Weights are saved in bf16 (a few MB each). Determinism: fixed seeds and a fixed thread count
(--threads, default 2) give the same weights on the same machine and torch build.

Why these sizes (measured on the 2-core CPU machine, see README "Evidence"): 4 layers, hidden 128,
64 experts of width 64 (1 shared, top-4 = 3 routed + shared) keep the MoE structure of the release
(1/16 of the experts active, as 8 of 128; so a 12.5% pool holds 7 routed experts for top-3, as the
release's 16 hold 15 for top-7) while a step of 16 x 256 tokens takes under half a second, so 2,000
steps (8M tokens) train in about 15 minutes per model.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import fields
from pathlib import Path

import torch

import emo_prune  # noqa: F401  (registers the EMO model)
from emo_prune.train import TrainConfig, train, train_tokenizer
from emo_prune.train.corpus import DEFAULT_SHARES, mixture

ASSETS = Path(__file__).resolve().parents[2] / "emo_prune" / "assets" / "models"
NAMES = {"emo": "emo-small", "standard": "stdmoe-small"}

# The bundled models' settings; every field can be overridden on the command line.
DEFAULTS = TrainConfig(
    layers=4,
    hidden=128,
    heads=4,
    experts=64,
    top_k=4,
    expert_width=64,
    vocab_size=4096,
    seq_len=256,
    batch_size=16,
    steps=2000,
    lr=3e-3,
    warmup=100,
    pool_min=4,
    pool_max=64,
    seed=0,
    threads=2,
)
TRAIN_CHARS = 30_000_000  # ~8M tokens of mixture: about one pass at 2,000 steps x 4,096 tokens


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objective", choices=["emo", "standard", "both"], default="both")
    parser.add_argument("--out", type=Path, default=ASSETS, help="folder that receives emo-small/ and stdmoe-small/")
    parser.add_argument("--chars", type=int, default=TRAIN_CHARS, help="characters of training mixture")
    for f in fields(TrainConfig):
        if f.name != "objective":
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(getattr(DEFAULTS, f.name)), default=None)
    args = parser.parse_args(argv)
    overrides = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name, None) is not None}
    base = {f.name: getattr(DEFAULTS, f.name) for f in fields(TrainConfig)} | overrides
    torch.set_num_threads(base["threads"] or torch.get_num_threads())

    docs = mixture(DEFAULT_SHARES, args.chars, seed=base["seed"])
    print(f"mixture: {len(docs)} documents, {sum(len(t) for _, t in docs) / 1e6:.1f}M chars", file=sys.stderr)
    tokenizer = train_tokenizer((text for _, text in docs), vocab_size=base["vocab_size"])
    objectives = ["emo", "standard"] if args.objective == "both" else [args.objective]
    for objective in objectives:
        cfg = TrainConfig(**(base | {"objective": objective}))
        target = args.out / NAMES[objective]
        staging = args.out / f".{NAMES[objective]}.training"
        shutil.rmtree(staging, ignore_errors=True)
        record = train(docs, tokenizer, cfg, staging, log=lambda line: print(line, file=sys.stderr, flush=True))
        _to_bf16(staging)
        record["mixture"] = {"shares": DEFAULT_SHARES, "chars": args.chars, "documents": len(docs)}
        (staging / "training.json").write_text(json.dumps(record, indent=2) + "\n")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        print(f"{objective}: saved {target} ({record['wall_seconds']} s)", file=sys.stderr)
    return 0


def _to_bf16(folder: Path) -> None:
    """Re-save in bf16 through transformers (keeps AI2's per-expert key names)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16)
    model.save_pretrained(folder)


if __name__ == "__main__":
    raise SystemExit(main())
