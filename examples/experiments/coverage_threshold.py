"""How the coverage guard's default threshold was chosen: relative coverage of calibration prompts.

    python examples/experiments/coverage_threshold.py                 # both bundled models, 25% and 12.5% builds

For each bundled model, budget and domain, a mass subset is profiled on the domain's `calib` split and
extracted (cached under --work); then every context of the calibration-split context -> answer pairs
(examples/experiments/pool_tuning.py: code signatures, math questions, prose paragraphs) is measured by each build's
coverage guard: its coverage divided by the build's calibration coverage (`emo_prune.extract.coverage_meter`).
Prints, per build and prompt domain, the share of prompts a threshold flags, for a few thresholds: the
default (`DEFAULT_WARN`) should flag few prompts of the build's own domain and most of the others.
Held-out documents are not used, so examples/experiments/pool_benchmark.py's coverage numbers stay held out.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pool_benchmark as bench  # noqa: E402
import pool_tuning as tune  # noqa: E402

from emo_prune.extract.coverage_meter import DEFAULT_WARN, CoverageMeter  # noqa: E402
from emo_prune.models.builtin import resolve_model  # noqa: E402
from emo_prune.models.weights import load_pretrained  # noqa: E402

MODELS = {"EMO": "builtin:emo-small", "standard": "builtin:stdmoe-small"}
DOMAINS = bench.DOMAINS
THRESHOLDS = (0.8, DEFAULT_WARN, 0.9)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "emo-prune-coverage")
    parser.add_argument("--limit", type=int, default=32, help="calibration prompts per domain")
    args = parser.parse_args()
    torch.set_num_threads(2)
    from transformers import AutoTokenizer

    head = " | ".join(f"{d} prompts flagged at {', '.join(f'{t:g}' for t in THRESHOLDS)}" for d in DOMAINS)
    print(f"| model | build | calibration coverage | {head} |")
    print("|---|---|---:|" + "---|" * len(DOMAINS))
    for label, ref in MODELS.items():
        model_dir = resolve_model(ref)
        pairs = tune.calib_pairs(AutoTokenizer.from_pretrained(model_dir), args.limit)
        for budget in ("0.25", "0.125"):
            for domain in DOMAINS:
                build = bench.domain_build(model_dir, args.work / label, domain, budget)
                meter = CoverageMeter.of_build(load_pretrained(build, torch.float32), build)
                cells = []
                for prompts in DOMAINS:
                    relative = [meter.of_tokens(p["context"]).value / meter.expected for p in pairs if p["domain"] == prompts]
                    cells.append(" / ".join(f"{sum(r < t for r in relative) / len(relative):.0%}" for t in THRESHOLDS))
                print(
                    f"| {label} | {domain} {float(budget):.1%} | {meter.expected:.3f} | " + " | ".join(cells) + " |", flush=True
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
