"""Choose pool settings on the CALIBRATION split, so the held-out benchmark stays held out.

    python examples/experiments/pool_tuning.py                        # builtin:emo-small, 12.5% and 25%
    python examples/experiments/pool_tuning.py --budgets 0.125 --limit 48

Context -> answer pairs are cut from the `calib` split of each built-in corpus exactly as the
held-out tasks of recipes/tasks are cut from `heldout` (emo_prune.eval.taskdata: code = signature and
docstring -> body, math = problem -> worked answer, prose = paragraphs so far -> the next one); then
every candidate setting of `--draft / --draft-rounds / --pool-power / --pool-index --pool-neighbours
--index-weight` is scored like examples/experiments/pool_benchmark.py scores the held-out pairs: quality retained =
the full model's bits per byte of the answers / the setting's, per domain and per math problem family.
The pool index of the `index` candidates is the default of `emo-prune pool-index` (the `train` split
of every corpus, `emo_prune.serve.index_build.DEFAULT_SOURCES`; mass of each whole document), or the mass
of the answers alone (`--mass-of answer`, at `--power` 1 or 2), so no scored pair is in it. The
setting the README recommends is the best here; examples/experiments/pool_benchmark.py then reports it on
held-out documents it never saw. The last run's table: examples/experiments/results/pool_tuning.md.
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

from emo_prune.calib.pairs import code_answers, math_answers, prose_answers  # noqa: E402
from emo_prune.calib.sources import load_documents  # noqa: E402
from emo_prune.models.builtin import resolve_model  # noqa: E402
from emo_prune.models.weights import load_pretrained  # noqa: E402
from emo_prune.serve import PoolSettings, load_pool_runtime  # noqa: E402
from emo_prune.serve.index_build import DEFAULT_SOURCES, build_index  # noqa: E402

SPLITTERS = {"code": code_answers, "prose": prose_answers, "math": math_answers}
CANDIDATES = {
    "pool": dict(),
    "d32x2": dict(draft=32, draft_rounds=2),
    "d32x2 p2": dict(draft=32, draft_rounds=2, pool_power=2.0),
    "index answer p2 K8": dict(index=("answer", 2.0), pool_neighbours=8),
    "index answer K8": dict(index=("answer", 1.0), pool_neighbours=8),
    "index K4": dict(index=("document", 1.0), pool_neighbours=4),
    "index K8": dict(index=("document", 1.0), pool_neighbours=8),
    "index K16": dict(index=("document", 1.0), pool_neighbours=16),
    "index K8 + d32 w1": dict(index=("document", 1.0), pool_neighbours=8, draft=32, index_weight=1.0),
    "index K8 + d32 w3": dict(index=("document", 1.0), pool_neighbours=8, draft=32, index_weight=3.0),
    "index K8 + d32 w10": dict(index=("document", 1.0), pool_neighbours=8, draft=32, index_weight=10.0),
    "index K8 + d32 w30": dict(index=("document", 1.0), pool_neighbours=8, draft=32, index_weight=30.0),
}

# the table of examples/experiments/results/pool_tuning.md; the other candidates were measured before (README)
DEFAULT = ("pool", "d32x2 p2", "index answer p2 K8", "index answer K8", "index K4", "index K8", "index K16",
           "index K8 + d32 w3", "index K8 + d32 w10")  # fmt: skip


def calib_pairs(tokenizer, limit: int) -> list[dict]:
    """Up to `limit` context -> answer pairs per domain from the calibration split, tokenized as the benchmark's."""
    pairs = []
    for domain, split in SPLITTERS.items():
        records = [r for doc in load_documents([f"builtin:{domain}:calib"], seed=0) for r in split(doc.text)][:limit]
        pairs += [bench.tokenize_pair(tokenizer, domain, r) for r in records]
    return pairs


def default_index(model_dir: Path, path: Path, mass_of: str, power: float) -> Path:
    """The pool index `emo-prune pool-index MODEL --mass-of M --power P` builds (`DEFAULT_SOURCES`), written to `path`."""
    build_index(model_dir, list(DEFAULT_SOURCES), power=power, mass_of=mass_of).save(path)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="builtin:emo-small")
    parser.add_argument("--budgets", nargs="+", default=["0.125", "0.25"])
    parser.add_argument("--limit", type=int, default=400, help="pairs per domain (400: all of the calib split's)")
    parser.add_argument("--candidates", nargs="+", default=list(DEFAULT), choices=list(CANDIDATES))
    args = parser.parse_args()
    torch.set_num_threads(1)
    from transformers import AutoTokenizer

    started = time.perf_counter()
    model_dir = resolve_model(args.model)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    pairs = calib_pairs(tokenizer, args.limit)
    work = Path(tempfile.mkdtemp(prefix="pool-tuning-"))
    kinds = sorted({CANDIDATES[name]["index"] for name in args.candidates if "index" in CANDIDATES[name]})  # (mass_of, power)
    indexes = {kind: default_index(model_dir, work / f"{kind[0]}-p{kind[1]}.index.safetensors", *kind) for kind in kinds}
    full = load_pretrained(model_dir, torch.float32)
    full_nll = [bench.whole_nll(full, p) for p in pairs]
    del full
    names = [name for name, idx in bench.groups(pairs).items() if idx]  # domains, then math's families
    counts = ", ".join(f"{name} {len(idx)}" for name, idx in bench.groups(pairs).items() if idx)
    print(f"calibration pairs: {counts}\n")
    print("| budget | setting | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for budget in args.budgets:
        for name in args.candidates:
            options = dict(CANDIDATES[name])
            if "index" in options:
                options["pool_index"] = str(indexes[options.pop("index")])
            runtime = load_pool_runtime(model_dir, PoolSettings(pool=budget, **options))
            nll = [-float(runtime.score(p["context"], p["answer"])[0].sum()) for p in pairs]
            retained = bench.retained(full_nll, nll, pairs)
            print(f"| {float(budget):.1%} | {name} | " + " | ".join(f"{retained[n]:.2f}" for n in names) + " |", flush=True)
    print(f"\n({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
