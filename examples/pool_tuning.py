"""Choose pool settings on the CALIBRATION split, so the held-out benchmark stays held out.

    python examples/pool_tuning.py                        # builtin:emo-small, 12.5% and 25%
    python examples/pool_tuning.py --budgets 0.125 --limit 48

Context -> answer pairs are cut from the `calib` split of each built-in corpus exactly as the
held-out tasks of recipes/tasks are cut from `heldout` (emo_prune.eval.taskdata: code = signature and
docstring -> body, math = problem -> worked answer, prose = paragraphs so far -> the next one), from
the even-numbered documents; then every candidate setting of `--draft / --draft-rounds /
--reselect-every / --pool-power / --pool-index --pool-neighbours` is scored like
examples/pool_benchmark.py scores the held-out pairs: quality retained = the full model's bits per
byte of the answers / the setting's, per domain. The pool index of the `index` candidates is built
from the odd-numbered documents (`emo_prune.pools.index`, every pair they hold), so no scored pair
is its own neighbour. The setting the README recommends is the best
here; examples/pool_benchmark.py then reports it on held-out documents it never saw. The last run's
table: examples/results/pool_tuning.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pool_benchmark as bench  # noqa: E402

from emo_prune.assets import resolve_model  # noqa: E402
from emo_prune.calib.sources import load_documents  # noqa: E402
from emo_prune.eval.taskdata import code_answers, math_answers, prose_answers  # noqa: E402
from emo_prune.models.weights import load_pretrained  # noqa: E402
from emo_prune.pools import PoolSettings, load_pool_runtime  # noqa: E402
from emo_prune.pools.index import IndexPair, context_answer_pairs, index_pairs, tokenize_pair  # noqa: E402

SPLITTERS = {"code": code_answers, "prose": prose_answers, "math": math_answers}
CANDIDATES = {
    "pool": dict(),
    "d32x2": dict(draft=32, draft_rounds=2),
    "d32x2 p2": dict(draft=32, draft_rounds=2, pool_power=2.0),
    "d32x2 p3": dict(draft=32, draft_rounds=2, pool_power=3.0),
    "d32x3 p2": dict(draft=32, draft_rounds=3, pool_power=2.0),
    "d32x2+re8 p2": dict(draft=32, draft_rounds=2, reselect_every=8, pool_power=2.0),
    "index K4": dict(pool_neighbours=4),
    "index K8": dict(pool_neighbours=8),
    "index K16": dict(pool_neighbours=16),
    "index K8 + d32 w1": dict(pool_neighbours=8, draft=32, index_weight=1.0),
    "index K8 + d32 w3": dict(pool_neighbours=8, draft=32, index_weight=3.0),
    "index K8 + d32 w10": dict(pool_neighbours=8, draft=32, index_weight=10.0),
    "index K8 + d32 w30": dict(pool_neighbours=8, draft=32, index_weight=30.0),
    "index K8 + d32x2 w3": dict(pool_neighbours=8, draft=32, draft_rounds=2, index_weight=3.0),
}

# the table of examples/results/pool_tuning.md; the other candidates were measured before (README)
DEFAULT = ("pool", "d32x2", "d32x2 p2", "index K4", "index K8", "index K16", "index K8 + d32 w1", "index K8 + d32 w3",
           "index K8 + d32 w10", "index K8 + d32 w30")  # fmt: skip


def calib_documents(domain: str, parity: int | None = None) -> list[str]:
    """The calibration split's documents of `domain`: all, or those whose position is even (parity 0) or odd (1)."""
    texts = [doc.text for doc in load_documents([f"builtin:{domain}:calib"], seed=0)]
    return texts if parity is None else texts[parity::2]


def calib_pairs(tokenizer, limit: int, parity: int | None = None) -> list[dict]:
    """Up to `limit` context -> answer pairs per domain from the calibration documents (`calib_documents`),
    tokenized as the benchmark's."""
    pairs = []
    for domain, split in SPLITTERS.items():
        records = [r for text in calib_documents(domain, parity) for r in split(text)][:limit]
        pairs += [bench.tokenize_pair(tokenizer, domain, r) for r in records]
    return pairs


def odd_index(model_dir: Path, tokenizer, path: Path) -> Path:
    """A pool index of every context -> answer pair of the odd calibration documents, written to `path`."""
    pairs = [
        IndexPair(domain, *tokenize_pair(tokenizer, r["context"], r["answer"]))
        for domain in SPLITTERS
        for text in calib_documents(domain, 1)
        for r in context_answer_pairs(text)
    ]
    index_pairs(model_dir, pairs).save(path)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="builtin:emo-small")
    parser.add_argument("--budgets", nargs="+", default=["0.125", "0.25"])
    parser.add_argument("--limit", type=int, default=64, help="pairs per domain")
    parser.add_argument("--candidates", nargs="+", default=list(DEFAULT), choices=list(CANDIDATES))
    args = parser.parse_args()
    torch.set_num_threads(1)
    from transformers import AutoTokenizer

    started = time.perf_counter()
    model_dir = resolve_model(args.model)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    pairs = calib_pairs(tokenizer, args.limit, parity=0)
    work = Path(tempfile.mkdtemp(prefix="pool-tuning-"))
    index = odd_index(model_dir, tokenizer, work / "odd.index.safetensors") if any(c.startswith("index") for c in args.candidates) else None
    full = load_pretrained(model_dir, torch.float32)
    full_nll = [bench.whole_nll(full, p) for p in pairs]
    del full
    domains = list(SPLITTERS)
    counts = ", ".join(f"{d} {sum(p['domain'] == d for p in pairs)}" for d in domains)
    print(f"calibration pairs: {counts}\n")
    print("| budget | setting | " + " | ".join(domains) + " |")
    print("|---|---|" + "---|" * len(domains))
    for budget in args.budgets:
        for name in args.candidates:
            uses_index = dict(pool_index=str(index)) if name.startswith("index") else {}
            runtime = load_pool_runtime(model_dir, PoolSettings(pool=budget, **CANDIDATES[name], **uses_index))
            nll = [-float(runtime.score(p["context"], p["answer"])[0].sum()) for p in pairs]
            retained = bench.retained_by_domain(full_nll, nll, pairs)
            print(f"| {float(budget):.1%} | {name} | " + " | ".join(f"{retained[d]:.2f}" for d in domains) + " |", flush=True)
    print(f"\n({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
