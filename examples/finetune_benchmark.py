"""Recovery fine-tuning measured on the two bundled models: what fine-tuning a build buys, against fair baselines.

    python examples/finetune_benchmark.py                        # every row: writes examples/results/finetune.{md,json}
    python examples/finetune_benchmark.py --models EMO --domains math --budgets 0.125 --max-tokens 100000 --work /tmp/ft

For each model (emo-small: EMO objective; stdmoe-small: its standard twin), domain and budget, with the
SAME token budget (`--max-tokens` of the domain's `train` split, the text the bundled models learned
from; one seed) for every fine-tuned row:
  build        the static subset (`pool_benchmark.domain_build`: mass selection on a profile of every
               domain's `calib` split), not fine-tuned
  build+ft     the build fine-tuned (`emo-prune finetune`: AI2's defaults, but the token budget and --batch-size 16)
  full+ft      the full model with its whole weight set fine-tuned on the same tokens (the fair baseline,
               and the forgetting that expert-only training avoids: scored on all three domains)
  merged       the full model after `merge-back` of build+ft (routed experts only, AI2's default), scored
               on all three domains
Scores are held-out bits per byte (`emo_ppl_<domain>`, lm-eval through `emo-prune eval`'s library);
"retained" is the unfine-tuned full model's bits per byte over the row's (1.0 = as good as the full
model; higher is better). Each fine-tuning runs in its own process, which reports its seconds per 1M
tokens and its peak RSS (getrusage). Work is cached under --work.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pool_benchmark as bench  # noqa: E402
from modularity_table import DOMAINS, MODELS, bits_per_byte, task  # noqa: E402

import emo_prune  # noqa: F401,E402
from emo_prune.assets import resolve_model  # noqa: E402
from emo_prune.eval.harness import EvalSettings  # noqa: E402
from emo_prune.train.merge_back import merge_back  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"

# one fine-tuning in a fresh process: its own peak RSS, its own wall time
FINETUNE = """
import json, resource, sys, time
from emo_prune.train.finetune import FinetuneSettings, finetune
model, source, out, settings = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
started = time.perf_counter()
result = finetune(model, [source], out, FinetuneSettings(**settings))
print(json.dumps({"seconds": time.perf_counter() - started, "tokens": result.tokens,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "first_loss": result.losses[0]["loss"], "last_loss": result.losses[-1]["loss"]}))
"""


def finetuned(model_dir: Path, domain: str, out: Path, settings: dict) -> dict:
    """Fine-tune `model_dir` on the domain's train split into `out` (once); the run's measurements."""
    record = out.with_name(out.name + ".run.json")
    if not record.exists():
        command = [sys.executable, "-c", FINETUNE, str(model_dir), f"builtin:{domain}:train", str(out), json.dumps(settings)]
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        record.write_text(done.stdout.strip().splitlines()[-1])
    run = json.loads(record.read_text())
    run["seconds_per_1m_tokens"] = run["seconds"] / run["tokens"] * 1e6
    return run


def retained(full: dict[str, float], scores: dict[str, float]) -> dict[str, float]:
    return {d: round(full[d] / scores[d], 4) for d in DOMAINS}


def run(work: Path, models: list[str], domains: list[str], budgets: list[str], settings: dict) -> dict:
    evals = EvalSettings(tasks=tuple(task(d) for d in DOMAINS), batch_size=8, impl="eager", dtype="float32")
    rows = []
    for label in models:
        model_dir = resolve_model(MODELS[label])
        root = bench.model_work(work / label, model_dir)
        full = bits_per_byte(model_dir, root / "eval" / "full.json", evals)
        for domain in domains:
            tuned_full = root / f"full-ft-{domain}"
            full_run = finetuned(model_dir, domain, tuned_full, settings)
            full_scores = bits_per_byte(tuned_full, root / "eval" / f"full-ft-{domain}.json", evals)
            rows.append({"model": label, "domain": domain, "keep": 1.0, "row": "full+ft", "retained": retained(full, full_scores), **full_run})
            for budget in budgets:
                build = bench.domain_build(model_dir, work / label, domain, budget)
                scores = bits_per_byte(build, root / "eval" / f"{build.name}.json", evals)
                rows.append({"model": label, "domain": domain, "keep": float(budget), "row": "build", "retained": retained(full, scores)})
                tuned = root / f"{build.name}-ft"
                tuned_run = finetuned(build, domain, tuned, settings)
                scores = bits_per_byte(tuned, root / "eval" / f"{tuned.name}.json", evals)
                rows.append({"model": label, "domain": domain, "keep": float(budget), "row": "build+ft", "retained": retained(full, scores), **tuned_run})
                merged = root / f"{build.name}-merged"
                if not merged.exists():
                    merge_back(model_dir, tuned, merged)
                scores = bits_per_byte(merged, root / "eval" / f"{merged.name}.json", evals)
                rows.append({"model": label, "domain": domain, "keep": float(budget), "row": "merged", "retained": retained(full, scores)})
                for row in rows[-3:]:
                    print(json.dumps(row), flush=True)
    return {"settings": settings, "domains": domains, "budgets": budgets, "rows": rows}


def markdown(table: dict) -> str:
    lines = [
        f"settings: {json.dumps(table['settings'])}",
        "",
        "| model | domain | keep | row | retained: " + " | ".join(DOMAINS) + " | s per 1M tokens | peak RSS MB |",
        "|---|---|---:|---|" + "---:|" * (len(DOMAINS) + 2),
    ]
    for r in table["rows"]:
        cells = " | ".join(f"{r['retained'][d]:.3f}" for d in DOMAINS)
        timing = f"{r['seconds_per_1m_tokens']:.0f} | {r['peak_rss_mb']:.0f}" if "seconds" in r else "- | -"
        lines.append(f"| {r['model']} | {r['domain']} | {r['keep']:g} | {r['row']} | {cells} | {timing} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("runs/finetune"), help="builds, fine-tuned models, cached scores")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--domains", nargs="+", default=list(DOMAINS), choices=DOMAINS)
    parser.add_argument("--budgets", nargs="+", default=list(bench.BUDGETS))
    parser.add_argument("--max-tokens", type=int, default=100_000, help="tokens of the train split per fine-tuning (every row)")
    parser.add_argument("--lr", type=float, default=5e-5, help="AI2's default")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    settings = {"max_tokens": args.max_tokens, "lr": args.lr, "batch_size": args.batch_size, "seq_len": args.seq_len}
    table = run(args.work, args.models, args.domains, args.budgets, settings)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "finetune.json").write_text(json.dumps(table, indent=2) + "\n")
    text = markdown(table)
    (args.out / "finetune.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
