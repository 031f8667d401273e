"""The paper's effect, measured with emo-prune on the two bundled small models.

    python examples/experiments/modularity_table.py                  # writes examples/experiments/results/modularity.{md,json}
    python examples/experiments/modularity_table.py --budgets 0.25 --domains math --work /tmp/mod

For each model (emo-small: EMO objective; stdmoe-small: its standard-MoE twin, same data and steps):
  1. profile once on the `calib` split of every built-in domain (text neither training nor
     evaluation saw);
  2. for each domain and keep fraction, select that domain's experts by each method (mass = mean router
     probability, AI2's default statistic; frequency; REAP; EASY-EP; coverage; greedy on request, it
     runs the model layer by layer; random as a baseline), extract the subset, and
  3. evaluate held-out perplexity of every domain with `emo-prune eval`'s library (lm-eval,
     loglikelihood_rolling on the `heldout` split, bits per byte).
"retained" is the full model's bits-per-byte divided by the subset's on the domain it was cut for
(1.0 = no loss; lower-is-better metrics are inverted this way everywhere in emo-prune). Builds and
results are cached under --work (per model content), so a second run only prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pool_benchmark as bench  # noqa: E402

import emo_prune  # noqa: F401,E402
from emo_prune.eval.harness import EvalSettings, evaluate_model  # noqa: E402
from emo_prune.extract import extract  # noqa: E402
from emo_prune.models.builtin import resolve_model  # noqa: E402
from emo_prune.profile.runner import ProfileSettings, profile_to_file  # noqa: E402
from emo_prune.profile.store import Profile  # noqa: E402
from emo_prune.select import SelectOptions, make_plan  # noqa: E402

MODELS = {"EMO": "builtin:emo-small", "standard": "builtin:stdmoe-small"}
DOMAINS = ("code", "prose", "math")
BUDGETS = (0.5, 0.25, 0.125)
ALL_METHODS = ("mass", "frequency", "reap", "easy_ep", "coverage", "greedy", "random")
METHODS = ("mass", "frequency", "reap", "easy_ep", "coverage", "random")  # greedy: ask for it (slow)
METRIC = "bits_per_byte"
RESULTS = Path(__file__).resolve().parent / "results"


def task(domain: str) -> str:
    return f"emo_ppl_{domain}"


def bits_per_byte(model_dir: Path, cache: Path, settings: EvalSettings) -> dict[str, float]:
    """{domain: bits per byte} of `model_dir`, cached as JSON in `cache`."""
    if not cache.exists():
        result = evaluate_model(model_dir, settings)
        scores = {d: result.tasks[task(d)].metrics[METRIC].value for d in DOMAINS if task(d) in result.tasks}
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(scores))
    return json.loads(cache.read_text())


def has_every_statistic(profile: Path) -> bool:
    if not profile.exists():
        return False
    loaded = Profile.load(profile)
    return all("easy_ep" in d.expert and d.sample is not None for d in loaded.domains.values())


def run(work: Path, domains: list[str], budgets: list[float], methods: list[str], seed: int) -> dict:
    settings = EvalSettings(tasks=tuple(task(d) for d in DOMAINS), batch_size=8, impl="eager", dtype="float32")
    rows = []
    for label, model_ref in MODELS.items():
        model_dir = resolve_model(model_ref)
        root = bench.model_work(work / label, model_dir)  # per model content: a retrained model starts afresh
        profile = root / "profile.safetensors"
        if not has_every_statistic(profile):  # absent, or cached before easy_ep and the top-k sample
            sources = [f"builtin:{d}:calib" for d in DOMAINS]
            profile_to_file(
                model_dir, sources, profile, list(DOMAINS), ProfileSettings(seq_len=256, batch_size=8), overwrite=True
            )
        full = bits_per_byte(model_dir, root / "eval" / "full.json", settings)
        for domain in domains:
            for method in methods:
                for budget in budgets:
                    name = f"{domain}-{method}-{budget}"
                    build = root / "builds" / name
                    if not build.exists():
                        options = SelectOptions(keep=str(budget), domains=(domain,), method=method, seed=seed)
                        extract(model_dir, make_plan(model_dir, options, profile_path=profile), build)
                    scores = bits_per_byte(build, root / "eval" / f"{name}.json", settings)
                    rows.append(
                        {
                            "model": label,
                            "domain": domain,
                            "method": method,
                            "keep": budget,
                            "bpb_full": full[domain],
                            "bpb_subset": scores[domain],
                            "retained": full[domain] / scores[domain],
                            "other_domains_bpb": {d: scores[d] for d in DOMAINS if d != domain},
                        }
                    )
                    print(json.dumps(rows[-1]), flush=True)
    return {"metric": METRIC, "domains": list(domains), "budgets": list(budgets), "rows": rows}


def markdown(table: dict) -> str:
    budgets = table["budgets"]
    head = "| domain | selection | model | full bpb | " + " | ".join(f"keep {b:g}: bpb (retained)" for b in budgets) + " |"
    lines = [head, "|" + "---|" * (4 + len(budgets))]
    foot = f"\n`python examples/experiments/modularity_table.py {table.get('arguments', '')}`: {table.get('seconds', 0):.0f} s\n"
    index = {(r["model"], r["domain"], r["method"], r["keep"]): r for r in table["rows"]}
    for domain in table["domains"]:
        for method in [m for m in ALL_METHODS if any(r["method"] == m for r in table["rows"])]:
            for model in MODELS:
                cells = [index.get((model, domain, method, b)) for b in budgets]
                if not any(cells):
                    continue
                full = next(c for c in cells if c)["bpb_full"]
                values = " | ".join(f"{c['bpb_subset']:.3f} ({c['retained']:.2f})" if c else "-" for c in cells)
                lines.append(f"| {domain} | {method} | {model} | {full:.3f} | {values} |")
    return "\n".join(lines) + "\n" + foot


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("runs/modularity"), help="builds and cached scores")
    parser.add_argument("--domains", nargs="+", default=list(DOMAINS), choices=DOMAINS)
    parser.add_argument("--budgets", nargs="+", type=float, default=list(BUDGETS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=ALL_METHODS)
    parser.add_argument("--seed", type=int, default=0, help="seed of the random-selection baseline")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    table = run(args.work, args.domains, args.budgets, args.methods, args.seed)
    table["seconds"] = time.perf_counter() - start  # cached builds and scores are not re-measured
    table["arguments"] = " ".join(argv if argv is not None else sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "modularity.json").write_text(json.dumps(table, indent=2) + "\n")
    text = markdown(table)
    (args.out / "modularity.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
