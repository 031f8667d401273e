"""Recovery fine-tuning measured on the two bundled models: what fine-tuning a build buys, against fair baselines.

    python examples/experiments/finetune_benchmark.py --max-tokens 1000000 --epochs 3 --lr 5e-4 --experts-only
        # the table of docs/finetune.md (up to 1M tokens, at most 3 passes): results/finetune.{md,json}
    python examples/experiments/finetune_benchmark.py --models EMO --domains code prose --max-tokens 1000000 --epochs 3 --lr 5e-4 --merge-variants --name finetune-merge-variants
        # other ways to merge the EMO code and prose builds back (reuses the table's cached work)
    python examples/experiments/finetune_benchmark.py --max-tokens 400000 --epochs 3 --lr 5e-4 --experts-only --name finetune-400k
        # the earlier table, 400k tokens for every domain: results/finetune-400k.{md,json}
    python examples/experiments/finetune_benchmark.py --domains code --max-tokens 1000000 --lr 5e-4 --experts-only --name finetune-code-1m
        # code alone at 1M tokens (a third of one pass; the table's code rows): results/finetune-code-1m.{md,json}
    python examples/experiments/finetune_benchmark.py --models EMO --domains code --budgets 0.125 --max-tokens 1000000 --lr 5e-4 --seed 1 --name finetune-code-1m-seed1
        # the 12.5% EMO code rows again with another seed: results/finetune-code-1m-seed1.{md,json}
    python examples/experiments/finetune_benchmark.py --models EMO --domains code prose --budgets 0.25 --max-tokens 1000000 --epochs 3 --lr 5e-4 --seed 1 --name finetune-merge-seed1
        # the 25% EMO code and prose rows (and their merges) with another seed: results/finetune-merge-seed1.{md,json}
    python examples/experiments/finetune_benchmark.py --models EMO --domains math --max-tokens 1000000 --epochs 3 --lr 5e-4 --experts-only --seed 1 --name finetune-math-seed1
    python examples/experiments/finetune_benchmark.py --models EMO --domains prose --budgets 0.125 --max-tokens 1000000 --epochs 3 --lr 5e-4 --experts-only --seed 1 --name finetune-prose-12.5-seed1
    python examples/experiments/finetune_benchmark.py --models standard --max-tokens 1000000 --epochs 3 --lr 5e-4 --experts-only --seed 1 --name finetune-standard-seed1
        # the other rows with another seed (EMO math, EMO 12.5% prose, every row of the standard twin)
    python examples/experiments/finetune_benchmark.py --models EMO --domains prose --max-tokens 1000000 --epochs 8 --lr 5e-4 --experts-only --name finetune-prose-1m
        # EMO prose at 1M tokens (6.3 passes: it overfits): results/finetune-prose-1m.{md,json}
    python examples/experiments/finetune_benchmark.py
        # 100k tokens, the rate chosen on validation text (--lr auto); kept as results/finetune-100k.{md,json}
    python examples/experiments/finetune_benchmark.py --models EMO --domains math --budgets 0.125 --max-tokens 100000 --work /tmp/ft

For each model (emo-small: EMO objective; stdmoe-small: its standard twin), domain and budget, with the
SAME token budget (`--max-tokens` of the domain's `train` split, passed over up to `--epochs` times; the text the bundled models learned
from; one seed) for every fine-tuned row:
  build        the static subset (`pool_benchmark.domain_build`: mass selection on a profile of every
               domain's `calib` split), not fine-tuned
  build+ft     the build fine-tuned (`emo-prune finetune`: AI2's defaults, but the token budget and --batch-size 16)
  full+ft      the full model with its whole weight set fine-tuned on the same tokens (the fair baseline,
               and the forgetting that expert-only training avoids: scored on all three domains)
  merged       the full model after `merge-back` of build+ft (routed experts only, AI2's default), scored
               on all three domains
  experts-only (--experts-only) the full model with only the build's experts trained, inside it
               (`finetune FULL --train experts --experts-of PLAN`), scored on all three domains
  merged --router, --router --shared, --alpha 0.5, --all  (--merge-variants) merge-back of build+ft
               with those options
  build+ft MODE  (--merge-variants) the build fine-tuned with `--train MODE` (experts: AI2's `routed`;
               experts+shared+router: `routed_shared_router`), and `merged (MODE trained)` that build
               merged back with what MODE trained (nothing else moved)
The learning rate is chosen blind (`--lr auto`, the default): every rate of `--lr-grid` fine-tunes each
12.5% build of every domain of the `--lr-models` (EMO: the model the tool is for), scored on VALIDATION documents (the domain's `calib` split, never
the held-out split the table reports); the rate with the best mean validation retention is used for
every row of the table. The sweep is printed and saved beside the table.
Scores are held-out bits per byte (`emo_ppl_<domain>`, lm-eval through `emo-prune eval`'s library);
"retained" is the unfine-tuned full model's bits per byte over the row's (1.0 = as good as the full
model; higher is better). Each fine-tuning runs in its own process, which reports its seconds per 1M
tokens and its peak RSS (its own VmHWM). Work is cached under --work.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pool_benchmark as bench  # noqa: E402
from modularity_table import DOMAINS, MODELS, bits_per_byte, task  # noqa: E402

import emo_prune  # noqa: F401,E402
from emo_prune.eval.harness import EvalSettings  # noqa: E402
from emo_prune.models.builtin import resolve_model  # noqa: E402
from emo_prune.train.merge_back import MergeOptions, merge_back  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"

# --merge-variants: other ways to carry a build's fine-tuning back into the full model ({row: options})
MERGE_VARIANTS = {
    "merged --router": MergeOptions(router=True),
    "merged --router --shared": MergeOptions(router=True, shared=True),
    "merged --alpha 0.5": MergeOptions(alpha=0.5),
    "merged --all": MergeOptions(everything=True),
}
# --merge-variants: the build fine-tuned in another of AI2's freeze modes, then merged with what that mode trained
TRAINED_VARIANTS = {
    "experts": MergeOptions(),  # AI2's `routed`
    "experts+shared+router": MergeOptions(router=True, shared=True),  # AI2's `routed_shared_router`
}

# one fine-tuning in a fresh process: its own peak RSS, its own wall time
FINETUNE = """
import json, sys, time
from emo_prune.process import threads
threads.prepare_environment(); threads.apply_threads(None)  # the CLI's thread rule, before torch loads
from emo_prune.process.memory import peak_rss_bytes
from emo_prune.train.finetune import FinetuneSettings, finetune
model, source, out, settings = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
started = time.perf_counter()
result = finetune(model, [source], out, FinetuneSettings(**settings))
print(json.dumps({"seconds": time.perf_counter() - started, "tokens": result.tokens,
                  "peak_rss_mb": peak_rss_bytes() / 2**20,  # this process's own peak
                  "first_loss": result.losses[0]["loss"], "last_loss": result.losses[-1]["loss"]}))
"""


def finetuned(model_dir: Path, domain: str, out: Path, settings: dict) -> dict:
    """Fine-tune `model_dir` on the domain's train split into `out` (once); the run's measurements."""
    record = out.with_name(out.name + ".run.json")
    if not record.exists():
        command = [sys.executable, "-c", FINETUNE, str(model_dir), f"builtin:{domain}:train", str(out), json.dumps(settings)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"fine-tuning {model_dir} failed:\n{done.stderr[-2000:]}")
        record.write_text(done.stdout.strip().splitlines()[-1])
    run = json.loads(record.read_text())
    run["seconds_per_1m_tokens"] = run["seconds"] / run["tokens"] * 1e6
    return run


def tag(settings: dict) -> str:
    """What names a fine-tuned folder: its rate and budget, so caches of other settings never mix."""
    return f"lr{settings['lr']:g}-{settings['max_tokens']}t-{settings['epochs']}e-seed{settings.get('seed', 0)}"


def retained(full: dict[str, float], scores: dict[str, float]) -> dict[str, float]:
    return {d: round(full[d] / scores[d], 4) for d in DOMAINS}


VALIDATION_TASK = """tag: emo_validation
task: emo_val_{domain}
custom_dataset: !function utils.load_jsonl
dataset_kwargs:
  data_file: data/val_{domain}.jsonl
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: text
metric_list:
  - metric: bits_per_byte
    aggregation: bits_per_byte
    higher_is_better: false
"""


def validation_tasks(work: Path) -> Path:
    """lm-eval tasks `emo_val_<domain>`: `calib`-split documents, in corpus order, up to as many bytes
    and documents as the held-out task scores (code documents are whole modules of very different sizes)."""
    from emo_prune.calib import load_documents
    from emo_prune.eval.tasks import builtin_tasks_dir

    folder = work / "validation-tasks"
    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "utils.py").write_text((builtin_tasks_dir() / "utils.py").read_text())
    for domain in DOMAINS:
        heldout = [
            json.loads(line)["text"]
            for line in (builtin_tasks_dir() / "data" / f"ppl_{domain}.jsonl").read_text().splitlines()
            if line.strip()
        ]
        budget, lines = sum(len(t.encode()) for t in heldout), []
        for document in load_documents([f"builtin:{domain}:calib"]):
            size = len(document.text.encode())
            if size <= budget and len(lines) < len(heldout):
                lines.append(json.dumps({"text": document.text}))
                budget -= size
        (folder / "data" / f"val_{domain}.jsonl").write_text("\n".join(lines) + "\n")
        (folder / f"emo_val_{domain}.yaml").write_text(VALIDATION_TASK.format(domain=domain))
    return folder


def validation_evals(work: Path) -> EvalSettings:
    """How validation text is scored: `validation_tasks`, as the held-out table scores its split."""
    tasks = validation_tasks(work)
    return EvalSettings(
        tasks=tuple(f"emo_val_{d}" for d in DOMAINS), batch_size=8, impl="eager", dtype="float32", include_paths=(str(tasks),)
    )


def choose_lr(work: Path, models: list[str], grid: list[float], settings: dict) -> tuple[float, list[dict]]:
    """The rate of `grid` with the best mean validation retention over the 12.5% builds of `models`."""
    evals = validation_evals(work)
    sweep = []
    for lr in grid:
        scores = []
        for label in models:
            model_dir = resolve_model(MODELS[label])
            root = bench.model_work(work / label, model_dir)
            full = validation_bits(model_dir, root / "validation" / "full.json", evals)
            for domain in DOMAINS:
                build = bench.domain_build(model_dir, work / label, domain, "0.125")
                tuned = root / "lr-sweep" / f"{build.name}-ft-{tag({**settings, 'lr': lr})}"
                finetuned(build, domain, tuned, {**settings, "lr": lr})
                tuned_scores = validation_bits(tuned, root / "validation" / f"{tuned.name}.json", evals)
                scores.append(full[domain] / tuned_scores[domain])
        sweep.append({"lr": lr, "validation_retained": round(sum(scores) / len(scores), 4)})
        print(json.dumps(sweep[-1]), flush=True)
    best = max(sweep, key=lambda row: row["validation_retained"])
    return best["lr"], sweep


def validation_bits(model_dir: Path, cache: Path, settings: EvalSettings) -> dict[str, float]:
    """{domain: validation bits per byte} of `model_dir`, cached as JSON in `cache`."""
    if not cache.exists():
        from emo_prune.eval.harness import evaluate_model

        result = evaluate_model(model_dir, settings)
        scores = {d: result.tasks[f"emo_val_{d}"].metrics["bits_per_byte"].value for d in DOMAINS}
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(scores))
    return json.loads(cache.read_text())


def run(
    work: Path,
    models: list[str],
    domains: list[str],
    budgets: list[str],
    settings: dict,
    experts_only: bool = False,
    merge_variants: bool = False,
    on_row: Callable[[dict], None] = lambda table: None,
) -> dict:
    """The table {settings, domains, budgets, rows}; `on_row(table)` after every row (a stopped run keeps its rows)."""
    evals = EvalSettings(tasks=tuple(task(d) for d in DOMAINS), batch_size=8, impl="eager", dtype="float32")
    rows: list[dict] = []
    table = {"settings": settings, "domains": domains, "budgets": budgets, "rows": rows}
    for label in models:
        model_dir = resolve_model(MODELS[label])
        root = bench.model_work(work / label, model_dir)
        full = bits_per_byte(model_dir, root / "eval" / "full.json", evals)

        def add_row(domain: str, keep: float, kind: str, scored: Path, measured: dict | None = None) -> None:
            """Score `scored` (cached under its folder's name, which names the rate) and print the row."""
            scores = bits_per_byte(scored, root / "eval" / f"{scored.name}.json", evals)
            row = {
                "model": label,
                "domain": domain,
                "keep": keep,
                "row": kind,
                "retained": retained(full, scores),
                **(measured or {}),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
            on_row(table)

        def add_merged(domain: str, budget: str, kind: str, tuned: Path, options: MergeOptions = MergeOptions()) -> None:
            """Merge `tuned` back into the full model by `options` (once) and score it."""
            merged = tuned.with_name(tuned.name + "-" + re.sub(r"[^a-z0-9.]+", "-", kind).strip("-"))
            if not merged.exists():
                merge_back(model_dir, tuned, merged, options)
            add_row(domain, float(budget), kind, merged)

        for domain in domains:
            lr = tag(settings)
            tuned_full = root / f"full-ft-{domain}-{lr}"
            add_row(domain, 1.0, "full+ft", tuned_full, finetuned(model_dir, domain, tuned_full, settings))
            for budget in budgets:
                build = bench.domain_build(model_dir, work / label, domain, budget)
                add_row(domain, float(budget), "build", build)
                tuned = root / f"{build.name}-ft-{lr}"
                add_row(domain, float(budget), "build+ft", tuned, finetuned(build, domain, tuned, settings))
                add_merged(domain, budget, "merged", tuned)
                if merge_variants:
                    for kind, options in MERGE_VARIANTS.items():
                        add_merged(domain, budget, kind, tuned, options)
                    for mode, options in TRAINED_VARIANTS.items():
                        tuned_mode = root / f"{build.name}-ft-{mode}-{lr}"
                        trained = finetuned(build, domain, tuned_mode, {**settings, "train": mode})
                        add_row(domain, float(budget), f"build+ft {mode}", tuned_mode, trained)
                        add_merged(domain, budget, f"merged ({mode} trained)", tuned_mode, options)
                if experts_only:
                    plan = bench.domain_plan(model_dir, work / label, domain, budget)
                    trained = root / f"{build.name}-experts-only-{lr}"
                    inside = {**settings, "train": "experts", "experts_of": str(plan)}
                    add_row(domain, float(budget), "experts-only", trained, finetuned(model_dir, domain, trained, inside))
    return table


def sweep_markdown(sweep: list[dict]) -> str:
    lines = [
        "learning-rate sweep (mean validation retention of the 12.5% builds, `calib` split):",
        "",
        "| lr | validation retained |",
        "|---:|---:|",
    ]
    lines += [f"| {row['lr']:g} | {row['validation_retained']:.3f} |" for row in sweep]
    return "\n".join(lines) + "\n\n"


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
    parser.add_argument("--epochs", type=int, default=1, help="passes over the train split, cut at --max-tokens")
    parser.add_argument("--lr", default="auto", help="a rate for every row, or auto: chosen on validation text from --lr-grid")
    parser.add_argument("--lr-models", nargs="+", default=["EMO"], choices=list(MODELS), help="whose builds choose the rate")
    parser.add_argument("--lr-grid", nargs="+", type=float, default=[5e-5, 2e-4, 5e-4, 1e-3], help="AI2's default 5e-5 first")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--seed", type=int, default=0, help="of the data order and the trainer (every row); for math also the generated problems"
    )
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--name", default="finetune", help="the table's files: OUT/NAME.md and OUT/NAME.json")
    parser.add_argument(
        "--experts-only", action="store_true", help="also fine-tune only the build's experts inside the full model"
    )
    parser.add_argument(
        "--merge-variants",
        action="store_true",
        help="also merge with --router, --router --shared, --alpha 0.5, --all, and builds trained in other freeze modes",
    )
    args = parser.parse_args(argv)
    settings = {
        "max_tokens": args.max_tokens,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "seq_len": args.seq_len,
        "seed": args.seed,
    }
    sweep: list[dict] = []
    if args.lr == "auto":
        lr, sweep = choose_lr(args.work, args.lr_models, args.lr_grid, settings)
    else:
        lr = float(args.lr)
    args.out.mkdir(parents=True, exist_ok=True)

    def save(table: dict) -> str:
        (args.out / f"{args.name}.json").write_text(json.dumps({**table, "lr_sweep": sweep}, indent=2) + "\n")
        text = (sweep_markdown(sweep) if sweep else "") + markdown(table)
        (args.out / f"{args.name}.md").write_text(text)
        return text

    settings = {**settings, "lr": lr}
    table = run(args.work, args.models, args.domains, args.budgets, settings, args.experts_only, args.merge_variants, save)
    print(save(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
