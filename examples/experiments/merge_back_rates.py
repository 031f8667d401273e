"""Can a higher learning rate carry a code or prose gain through merge-back? Expert-only training, on validation text.

    python examples/experiments/merge_back_rates.py
        # EMO, code and prose, 25% and 12.5%: results/merge-back-rates.{md,json}
    python examples/experiments/merge_back_rates.py --domains code --budgets 0.125 --lrs 5e-4 2e-3 --work /tmp/ft

`finetune_benchmark.py --merge-variants` found that merging a build back lifts code and prose by at most 0.1%
at the table's rate (5e-4). Expert-only training has far fewer trainable weights than a whole-model
fine-tune, and such runs often want a higher rate; this script asks whether one helps. For each domain,
budget and rate of `--lrs`, on the bundled EMO:
  in place     the full model with only the build's experts trained, inside it (`finetune FULL --train
               experts --experts-of PLAN`): what training those experts can buy when they see the full
               model's routing (an upper bound for carrying the same experts over from a build)
  merged       the build fine-tuned with `--train experts` (AI2's `routed`), then `merge-back` (its experts
               into the full model at their original indices, nothing else moved)
Every run uses `--max-tokens` of the domain's `train` split (up to 3 passes; 300k by default: a third of
the table's budget, so a rate is cheap to try) and is scored on VALIDATION documents (the `calib` split,
as `finetune_benchmark --lr auto` does), never the held-out split: this chooses, it does not report.
"retained" is the full model's validation bits per byte over the row's (higher is better). Work is
cached under --work beside `finetune_benchmark.py`'s.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import finetune_benchmark as ft  # noqa: E402
import pool_benchmark as bench  # noqa: E402
from modularity_table import DOMAINS, MODELS  # noqa: E402

from emo_prune.models.builtin import resolve_model  # noqa: E402
from emo_prune.train.merge_back import MergeOptions, merge_back  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def run(work: Path, domains: list[str], budgets: list[str], lrs: list[float], settings: dict) -> list[dict]:
    """Rows {domain, keep, lr, row, retained: {domain: ratio}, first_loss, last_loss}, printed as they come."""
    evals = ft.validation_evals(work)
    model_dir = resolve_model(MODELS["EMO"])
    root = bench.model_work(work / "EMO", model_dir)
    full = ft.validation_bits(model_dir, root / "validation" / "full.json", evals)
    rows: list[dict] = []

    def add_row(domain: str, budget: str, lr: float, kind: str, scored: Path, trained: dict) -> None:
        scores = ft.validation_bits(scored, root / "validation" / f"{scored.name}.json", evals)
        row = {
            "domain": domain,
            "keep": float(budget),
            "lr": lr,
            "row": kind,
            "retained": ft.retained(full, scores),
            "first_loss": trained["first_loss"],
            "last_loss": trained["last_loss"],
        }
        rows.append(row)
        print(json.dumps(row), flush=True)

    for domain in domains:
        for budget in budgets:
            build = bench.domain_build(model_dir, work / "EMO", domain, budget)
            plan = bench.domain_plan(model_dir, work / "EMO", domain, budget)
            for lr in lrs:
                tag = ft.tag({**settings, "lr": lr})
                inside = root / "expert-rates" / f"{build.name}-experts-only-{tag}"
                trained = ft.finetuned(
                    model_dir, domain, inside, {**settings, "lr": lr, "train": "experts", "experts_of": str(plan)}
                )
                add_row(domain, budget, lr, "in place", inside, trained)
                tuned = root / "expert-rates" / f"{build.name}-ft-experts-{tag}"
                trained = ft.finetuned(build, domain, tuned, {**settings, "lr": lr, "train": "experts"})
                merged = tuned.with_name(tuned.name + "-merged")
                if not merged.exists():
                    merge_back(model_dir, tuned, merged, MergeOptions())
                add_row(domain, budget, lr, "merged", merged, trained)
    return rows


def markdown(settings: dict, rows: list[dict]) -> str:
    lines = [
        f"settings: {json.dumps(settings)} (scored on VALIDATION text, the `calib` split)",
        "",
        "| domain | keep | lr | row | retained: " + " | ".join(DOMAINS) + " | loss first -> last |",
        "|---|---:|---:|---|" + "---:|" * len(DOMAINS) + "---|",
    ]
    for r in rows:
        cells = " | ".join(f"{r['retained'][d]:.4f}" for d in DOMAINS)
        loss = f"{r['first_loss']:.3f} -> {r['last_loss']:.3f}"
        lines.append(f"| {r['domain']} | {r['keep']:g} | {r['lr']:g} | {r['row']} | {cells} | {loss} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("runs/finetune"), help="shared with finetune_benchmark.py")
    parser.add_argument("--domains", nargs="+", default=["code", "prose"], choices=DOMAINS)
    parser.add_argument("--budgets", nargs="+", default=list(bench.BUDGETS))
    parser.add_argument("--lrs", nargs="+", type=float, default=[5e-4, 2e-3, 5e-3], help="5e-4: the table's rate")
    parser.add_argument("--max-tokens", type=int, default=300_000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--name", default="merge-back-rates", help="the table's files: OUT/NAME.md and OUT/NAME.json")
    args = parser.parse_args(argv)
    settings = {"max_tokens": args.max_tokens, "epochs": 3, "batch_size": 16, "seq_len": 256, "seed": 0}
    rows = run(args.work, args.domains, args.budgets, args.lrs, settings)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps({"settings": settings, "rows": rows}, indent=2) + "\n")
    text = markdown(settings, rows)
    (args.out / f"{args.name}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
