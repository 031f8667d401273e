"""How much calibration a pool index needs: held-out math at 12.5% / 25% pools vs the index's size.

    python examples/pool_index_scaling.py              # builtin:emo-small; results/pool_index_scaling.md

The pool index of `emo-prune pool-index` (emo_prune.pools.index) is built from the code and prose
`calib` splits plus N math problems: the 381 of the math `calib` split (the command's default), then
1,000 and every one (3,215) of the math `train` split (text the model was trained on; the held-out
documents scored here are in neither). Each index is scored on the held-out math documents of
examples/pool_benchmark.py, per problem family, with the pool settings chosen on calibration pairs
(examples/pool_tuning.py: 8 neighbours; with a draft, 32 tokens weighed 1:10). Quality retained =
full model bits per byte / the setting's.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pool_benchmark as bench  # noqa: E402

from emo_prune.assets import resolve_model  # noqa: E402
from emo_prune.models.weights import load_pretrained  # noqa: E402
from emo_prune.pools import PoolSettings, build_index, load_pool_runtime  # noqa: E402

OTHERS = ["code=builtin:code:calib", "prose=builtin:prose:calib"]
INDEXES = {  # name -> (math source, problems at most)
    "calib 381": ("math=builtin:math:calib", None),
    "train 1000": ("math=builtin:math:train", 1000),
    "train 3215": ("math=builtin:math:train", None),
}
SETTINGS = {"index": dict(), "index+d32": dict(draft=32, index_weight=10.0)}


def main() -> int:
    torch.set_num_threads(1)
    from transformers import AutoTokenizer

    started = time.perf_counter()
    model_dir = resolve_model("builtin:emo-small")
    pairs = [p for p in bench.load_pairs(AutoTokenizer.from_pretrained(model_dir), None) if p["domain"] == "math"]
    groups = {name: idx for name, idx in bench.groups(pairs).items() if name.startswith("math") and idx}
    full = load_pretrained(model_dir, torch.float32)
    full_nll = [bench.whole_nll(full, p) for p in pairs]
    del full
    work = Path(tempfile.mkdtemp(prefix="pool-index-scaling-"))
    names = list(groups)
    lines = ["| index (math problems) | budget | setting | " + " | ".join(names) + " |", "|---|---|---|" + "---:|" * len(names)]
    for label, (source, limit) in INDEXES.items():
        path = work / f"{label.replace(' ', '-')}.safetensors"
        if limit is None:
            index = build_index(model_dir, [*OTHERS, source])
        else:  # the first `limit` math problems: a cap on math alone, code and prose whole
            index = build_index(model_dir, OTHERS + [source], max_pairs=max(limit, 197))
        index.save(path)
        for budget in ("0.25", "0.125"):
            for setting, options in SETTINGS.items():
                runtime = load_pool_runtime(model_dir, PoolSettings(pool=budget, pool_index=str(path), **options))
                nll = [-float(runtime.score(p["context"], p["answer"])[0].sum()) for p in pairs]
                cells = []
                for idx in groups.values():
                    sub = [pairs[i] for i in idx]
                    cells.append(f"{bench.bpb([full_nll[i] for i in idx], sub) / bench.bpb([nll[i] for i in idx], sub):.2f}")
                lines.append(f"| {label} ({index.summary()['domains']['math']}) | {float(budget):.1%} | {setting} | " + " | ".join(cells) + " |")
                print(lines[-1], flush=True)
    text = f"`python examples/pool_index_scaling.py` (builtin:emo-small, held-out math documents; {time.perf_counter() - started:.0f} s)\n\n" + "\n".join(lines) + "\n"
    (bench.RESULTS / "pool_index_scaling.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
