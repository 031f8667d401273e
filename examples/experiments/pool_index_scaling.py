"""How much calibration a pool index needs: held-out math at 12.5% / 25% pools vs the index's size.

    python examples/experiments/pool_index_scaling.py              # builtin:emo-small; results/pool_index_scaling.md

The pool index of `emo-prune pool-index` (emo_prune.serve.index_file; default: the `train` split of every
built-in corpus, the text the model was trained on) is built with code and prose whole and the first
N math problems: 381 (as many as the `calib` split holds), 1,000, then every one (3,215: the
default). Each index is scored on EVERY problem of the math `heldout` split (404, cut as the offline
task `emo_answer_math` cuts its 96: 43-77 per problem family, where the benchmark's 96 hold 12-20),
in none of the indexes, per problem family, with the pool settings
chosen on calibration pairs (examples/experiments/pool_tuning.py): 8 neighbours; with a draft, 32 tokens weighed
1:10. Quality retained = full model bits per byte / the setting's.
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

from emo_prune.calib import load_documents  # noqa: E402
from emo_prune.calib.pairs import math_answers  # noqa: E402
from emo_prune.models.builtin import resolve_model  # noqa: E402
from emo_prune.models.weights import load_pretrained  # noqa: E402
from emo_prune.serve import PoolSettings, load_pool_runtime  # noqa: E402
from emo_prune.serve.index_build import DEFAULT_SOURCES, index_pairs, tokenized_pairs  # noqa: E402

MATH_PROBLEMS = (381, 1000, None)  # the first N math problems of the default sources; None: all (the default index)
SETTINGS = {"index": dict(), "index+d32": dict(draft=32, index_weight=10.0)}


def main() -> int:
    torch.set_num_threads(1)
    from transformers import AutoTokenizer

    started = time.perf_counter()
    model_dir = resolve_model("builtin:emo-small")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    heldout = [r for doc in load_documents(["builtin:math:heldout"], seed=0) for r in math_answers(doc.text)]
    pairs = [bench.tokenize_pair(tokenizer, "math", r) for r in heldout]
    full = load_pretrained(model_dir, torch.float32)
    full_nll = [bench.whole_nll(full, p) for p in pairs]
    del full
    work = Path(tempfile.mkdtemp(prefix="pool-index-scaling-"))
    counts = {name: len(idx) for name, idx in bench.groups(pairs).items() if name.startswith("math") and idx}
    names = list(counts)
    lines = [
        "| index (math problems) | budget | setting | " + " | ".join(f"{n} ({counts[n]})" for n in names) + " |",
        "|---|---|---|" + "---:|" * len(names),
    ]
    default = tokenized_pairs(tokenizer, list(DEFAULT_SOURCES))
    for limit in MATH_PROBLEMS:
        math_pairs = [p for p in default if p.domain == "math"][:limit]
        index = index_pairs(model_dir, [p for p in default if p.domain != "math"] + math_pairs)
        label = "default (all)" if limit is None else f"first {limit}"
        path = work / f"math-{limit}.safetensors"
        index.save(path)
        for budget in ("0.25", "0.125"):
            for setting, options in SETTINGS.items():
                runtime = load_pool_runtime(model_dir, PoolSettings(pool=budget, pool_index=str(path), **options))
                nll = [-float(runtime.score(p["context"], p["answer"])[0].sum()) for p in pairs]
                retained = bench.retained(full_nll, nll, pairs)
                cells = [f"{retained[name]:.2f}" for name in names]
                lines.append(
                    f"| {label} ({index.summary()['domains']['math']}) | {float(budget):.1%} | {setting} | "
                    + " | ".join(cells)
                    + " |"
                )
                print(lines[-1], flush=True)
    text = (
        f"`python examples/experiments/pool_index_scaling.py` (builtin:emo-small, the {len(pairs)} problems of the math `heldout` split; {time.perf_counter() - started:.0f} s)\n\n"
        + "\n".join(lines)
        + "\n"
    )
    (bench.RESULTS / "pool_index_scaling.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    raise SystemExit(main())
