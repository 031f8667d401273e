"""An upper bound for per-request pools: pools chosen from the ANSWER's own router mass (an oracle).

    python examples/experiments/pool_oracle.py                    # builtin:emo-small, --pool-power 1 and 2

Pool mode never chooses a pool from tokens it scores; this script does, on purpose, to bound what any
choice of pools by router mass can keep. For each held-out context -> answer document (the same as
examples/experiments/pool_benchmark.py), the prefill feeds the context and then the true answer, the pools are
chosen from that mass (sum of p^a over context and answer, a = --pool-power), and the answer is scored
after the context within those pools. Prints quality retained (full model bits per byte / the
oracle's) per domain, math's problem families and budget. Not a method: a ceiling for the methods of the benchmark.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pool_benchmark as bench  # noqa: E402

from emo_prune.models.builtin import resolve_model  # noqa: E402
from emo_prune.models.weights import load_pretrained  # noqa: E402
from emo_prune.serve import PoolSettings, load_pool_runtime  # noqa: E402


@torch.no_grad()
def oracle_score(runtime, context: list[int], answer: list[int]) -> float:
    """The answer's NLL after `context`, within pools chosen from the context AND the answer."""
    request = runtime.begin()
    cache = runtime.new_cache()
    runtime.forward(context, cache)
    runtime.end_prefill()
    runtime.forward(answer, cache)  # the answer's mass, after its context: the whole document's, as in training
    runtime.reselect()
    request.history = request.history[-1:]
    cache = runtime.new_cache()
    first = runtime.forward(context, cache)[-1:]  # predicts answer[0]
    rest = runtime.forward(answer[:-1], cache) if len(answer) > 1 else first[:0]
    logprobs = torch.log_softmax(torch.cat([first, rest]).float(), dim=-1)
    return -float(logprobs.gather(1, torch.tensor(answer)[:, None]).sum())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="builtin:emo-small")
    parser.add_argument("--powers", type=float, nargs="+", default=[1.0, 2.0])
    args = parser.parse_args()
    torch.set_num_threads(1)
    from transformers import AutoTokenizer

    model_dir = resolve_model(args.model)
    pairs = bench.load_pairs(AutoTokenizer.from_pretrained(model_dir), None)
    full = load_pretrained(model_dir, torch.float32)
    full_nll = [bench.whole_nll(full, p) for p in pairs]
    del full
    names = [name for name, idx in bench.groups(pairs).items() if idx]  # domains, then math's families
    print("| pool power | budget | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for power in args.powers:
        for budget in bench.BUDGETS:
            runtime = load_pool_runtime(model_dir, PoolSettings(pool=budget, pool_power=power))
            nll = [oracle_score(runtime, p["context"], p["answer"]) for p in pairs]
            retained = bench.retained(full_nll, nll, pairs)
            print(f"| {power:g} | {float(budget):.1%} | " + " | ".join(f"{retained[n]:.2f}" for n in names) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
