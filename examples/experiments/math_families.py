"""Is `builtin:math` one domain or six? Subsets cut per math problem family vs one for all of math.

    python examples/experiments/math_families.py                 # both bundled models, keep 25%, ~1 minute

The math generator has six problem families (emo_prune/calib/builtin_math.py: add/subtract,
multiply, order of operations, fractions, linear equations, word problems). For each model this
profiles fresh problems of every family as its own domain (one pass), then for each family compares,
on other fresh problems of that family, bits per byte of:
  full        the unpruned model
  family      a subset cut for that family alone
  all math    one subset cut for all six families together (mass weighted by tokens), as the
              modularity table does for the `math` domain
and prints the mean Jaccard overlap of the families' subsets. If `family` keeps far more than
`all math`, the math domain is several domains that each prune well but do not share experts.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

import torch
from document_pools import bits_per_byte  # examples/ is on sys.path when this script runs
from transformers import AutoModelForCausalLM, AutoTokenizer

import emo_prune  # noqa: F401
from emo_prune.calib.builtin_math import KINDS
from emo_prune.extract import extract
from emo_prune.models.builtin import resolve_model
from emo_prune.profile import ProfileSettings, profile_to_file
from emo_prune.select import SelectOptions, make_plan

MODELS = {"EMO": "builtin:emo-small", "standard": "builtin:stdmoe-small"}
FAMILIES = [kind.__name__.lstrip("_") for kind in KINDS]


def problems(kind_index: int, count: int, seed: str) -> list[str]:
    r = random.Random(f"math-families {seed} {kind_index}")  # not the generator's own seeds
    return [KINDS[kind_index](r) for _ in range(count)]


def score(model_dir: Path, texts: dict[str, list[str]]) -> dict[str, float]:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    return {family: bits_per_byte(model, tokenizer, docs, None, None, 1024) for family, docs in texts.items()}


def kept_experts(plan) -> list[set[int]]:  # noqa: ANN001 (a select Plan); routed + shared per layer
    return [set(layer or []) for layer in plan.experts_kept_per_layer]


def run_model(model_ref: str, keep: str, calib_count: int, eval_count: int, work: Path) -> dict:
    model_dir = resolve_model(model_ref)
    calib = work / "calib.jsonl"
    calib.write_text(
        "".join(
            json.dumps({"text": t, "domain": f}) + "\n" for i, f in enumerate(FAMILIES) for t in problems(i, calib_count, "calib")
        )
    )
    evals = {f: problems(i, eval_count, "eval") for i, f in enumerate(FAMILIES)}
    profile = work / "profile.safetensors"
    profile_to_file(model_dir, [str(calib)], profile, settings=ProfileSettings(seq_len=256), overwrite=True)
    full = score(model_dir, evals)
    plans = {}
    for name, domains, combine in [*((f, (f,), "union") for f in FAMILIES), ("all math", tuple(FAMILIES), "weighted")]:
        plans[name] = make_plan(model_dir, SelectOptions(keep=keep, domains=domains, combine=combine), profile_path=profile)
    subsets = {}
    for name, plan in plans.items():
        build = work / name.replace(" ", "-")
        extract(model_dir, plan, build, overwrite=True)
        subsets[name] = score(build, {f: evals[f] for f in (FAMILIES if name == "all math" else [name])})
    rows = [
        {"family": f, "full": full[f], "family_subset": subsets[f][f], "all_math_subset": subsets["all math"][f]}
        for f in FAMILIES
    ]
    jaccards = []
    for i, a in enumerate(FAMILIES):
        for b in FAMILIES[i + 1 :]:
            for x, y in zip(kept_experts(plans[a]), kept_experts(plans[b])):
                jaccards.append(len(x & y) / max(len(x | y), 1))
    return {"rows": rows, "mean_jaccard": sum(jaccards) / len(jaccards)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", default="0.25")
    parser.add_argument("--calib", type=int, default=200, help="calibration problems per family")
    parser.add_argument("--eval", type=int, default=100, help="evaluation problems per family")
    args = parser.parse_args()
    print("| family | model | full bpb | subset for the family (retained) | one subset for all math (retained) |")
    print("|---|---|---|---|---|")
    overlaps = {}
    for label, ref in MODELS.items():
        with tempfile.TemporaryDirectory() as tmp:
            result = run_model(ref, args.keep, args.calib, args.eval, Path(tmp))
        overlaps[label] = result["mean_jaccard"]
        for r in result["rows"]:
            print(
                f"| {r['family']} | {label} | {r['full']:.3f} | {r['family_subset']:.3f} ({r['full'] / r['family_subset']:.2f}) "
                f"| {r['all_math_subset']:.3f} ({r['full'] / r['all_math_subset']:.2f}) |",
                flush=True,
            )
    for label, value in overlaps.items():
        print(f"{label}: mean Jaccard overlap of the families' {args.keep} subsets (routed + shared, per layer): {value:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
