"""Per-request expert pools against the full model and static domain subsets, on the bundled models.

    python examples/experiments/pool_benchmark.py                     # writes examples/experiments/results/pools.{md,json}
    python examples/experiments/pool_benchmark.py --quick             # fewer documents, no synthetic RSS model

Quality (context -> answer tasks of recipes/tasks, held-out documents; bits per byte of the ANSWER,
scored after its context, exactly as `emo-prune eval --tasks emo_answer_*` scores them), for each
model (builtin:emo-small, builtin:stdmoe-small), domain (code, prose, math and math's six problem
families) and budget (25%, 12.5% of each layer's experts, the shared one included):
  full      the whole model
  static    a domain subset: profiled on the domain's `calib` split, mass selection, extracted
  pool      per-request pools chosen from the request's context (emo_prune.serve), fixed
  pool+re8  re-chosen every 8 answer tokens from the tokens fed so far (never the one predicted)
  pool+d32  re-chosen from the context plus a 32-token greedy draft (the model's guess, from the
            context alone), then fixed
  pool+d32x2    two drafts in a row, the second decoded within the pools the first chose
  pool+d32x2+re8  and re-chosen every 8 answer tokens (from context, drafts and tokens fed)
  ... p2    the same, pools chosen by the sum of squared router probabilities (`--pool-power 2`)
  pool+index  pools from the model's pool index (`emo-prune pool-index`, defaults: the three corpora's
            `train` split): the router mass of the documents (context + answer) of the 8 indexed
            requests whose contexts route most like this one's (emo_prune.serve.index_file)
  pool+index+d32  and a 32-token draft decoded within those pools; the pools re-chosen from 10 x the
            neighbours' mass + the draft's (`--pool-index F --draft 32`)
retained = full bits per byte / the row's. Pools never see a scored token.

Memory and speed (a synthetic EMO-shaped checkpoint, hidden 512, 32 experts of width 512, 4 layers,
fp32, random weights: big enough that expert bytes dominate; each in a fresh process): peak RSS
(VmHWM) of a process that loads the model once and generates from 8 prompts (`pools.Generator`), whole
(emo_cpu) and in 25% / 12.5% pools with an expert cache of one pool's bytes, prefill and decode
tokens/s of the same runs. `--memory-only` reruns just this part into an existing result.

Cache: the pools of a mixed stream of requests (code, prose and math answer contexts, shuffled) replayed
through the ExpertStore with a budget of 50% of all experts' bytes, LRU and LFU, and Belady's optimal
replacement (an offline bound: it knows the future) on the same trace.

Coverage guard: on every answer document, the code-25% static build's coverage of the context vs its
quality loss on the answer (bits per byte of build minus full); Spearman correlation, per model.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import emo_prune  # noqa: F401
from emo_prune.calib.pairs import tokenize_pair as tokenize_ids
from emo_prune.eval.tasks import builtin_tasks_dir
from emo_prune.extract import extract
from emo_prune.extract.coverage_meter import CoverageMeter
from emo_prune.io import Checkpoint
from emo_prune.io.identity import model_identity
from emo_prune.models.builtin import resolve_model
from emo_prune.models.weights import load_pretrained
from emo_prune.profile.runner import ProfileSettings, profile_to_file
from emo_prune.select import SelectOptions, make_plan
from emo_prune.serve import ExpertStore, PoolSettings, load_pool_runtime
from emo_prune.serve.index_build import DEFAULT_SOURCES, build_index
from emo_prune.serve.index_file import DEFAULT_POWER, FORMAT, MASS_OF

MODELS = {"EMO": "builtin:emo-small", "standard": "builtin:stdmoe-small"}
DOMAINS = ("code", "prose", "math")
BUDGETS = ("0.25", "0.125")
INDEXED = "<the model's pool index>"
MODES = {
    "pool": dict(),
    "pool+re8": dict(reselect_every=8),
    "pool+d32": dict(draft=32),
    "pool+d32x2": dict(draft=32, draft_rounds=2),
    "pool+d32x2+re8": dict(draft=32, draft_rounds=2, reselect_every=8),
    "pool p2": dict(pool_power=2.0),
    "pool+d32x2 p2": dict(draft=32, draft_rounds=2, pool_power=2.0),
    "pool+index": dict(pool_index=INDEXED),  # the model's default pool index (model_index), 8 neighbours
    "pool+index+d32": dict(pool_index=INDEXED, draft=32, index_weight=10.0),  # and a draft, weighed 1:10 (pool_tuning.py)
}
FAMILIES = (
    ("add/sub", "What is"),
    ("multiply", "Compute"),
    ("order of ops", "Simplify"),
    ("fractions", "Add "),
    ("linear", "Solve"),
)
RESULTS = Path(__file__).resolve().parent / "results"


def family(context: str) -> str:
    question = context.removeprefix("Question: ")
    return next((name for name, start in FAMILIES if question.startswith(start)), "word problems")


def load_pairs(tokenizer, limit: int | None) -> list[dict]:
    """Every held-out answer document of the offline tasks, tokenized by `tokenize_pair`."""
    pairs = []
    for domain in DOMAINS:
        records = [
            json.loads(line) for line in (builtin_tasks_dir() / "data" / f"answer_{domain}.jsonl").read_text().splitlines()
        ]
        heldout = [r for r in records if r.get("split", "test") == "test"][:limit]  # as utils.load_jsonl splits them
        pairs += [tokenize_pair(tokenizer, domain, r) for r in heldout]
    return pairs


def tokenize_pair(tokenizer, domain: str, doc: dict) -> dict:
    """A {"context", "answer"} document tokenized as lm-eval's loglikelihood does (`emo_prune.calib.pairs.tokenize_pair`)."""
    context, answer = tokenize_ids(tokenizer, doc["context"], doc["answer"])
    return {
        "domain": domain,
        "family": family(doc["context"]) if domain == "math" else None,
        "context": context,
        "answer": answer,
        "bytes": len(doc["answer"].encode("utf-8")),
    }


def model_work(work: Path, model_dir: Path) -> Path:
    """Where the cached artifacts of `model_dir` live under `work`: a folder per model CONTENT (the sha256
    of its shards), so a retrained model never reuses another's profile, builds or index."""
    return work / model_identity(Checkpoint.open(model_dir))["digest"][:16]


def domain_build(model_dir: Path, work: Path, domain: str, budget: str) -> Path:
    """The static subset of `budget` for `domain` (mass selection on a profile of every domain's `calib`
    split), extracted under `work` (per model content: `model_work`) once and reused."""
    work = model_work(work, model_dir)
    profile = work / "profile.safetensors"
    if not profile.exists():
        sources = [f"{d}=builtin:{d}:calib" for d in DOMAINS]
        profile_to_file(model_dir, sources, profile, list(DOMAINS), ProfileSettings(seq_len=256, max_tokens=100_000))
    build = work / f"{domain}-{budget}"
    if not build.exists():
        extract(model_dir, make_plan(model_dir, SelectOptions(keep=budget, domains=(domain,)), profile_path=profile), build)
    return build


def domain_plan(model_dir: Path, work: Path, domain: str, budget: str) -> Path:
    """The plan file of `domain_build`'s build (the same selection, saved once)."""
    domain_build(model_dir, work, domain, budget)  # its profile
    path = model_work(work, model_dir) / f"{domain}-{budget}.plan.json"
    if not path.exists():
        profile = path.parent / "profile.safetensors"
        make_plan(model_dir, SelectOptions(keep=budget, domains=(domain,)), profile_path=profile).save(path)
    return path


def model_index(model_dir: Path, work: Path) -> Path:
    """The model's pool index as `emo-prune pool-index MODEL` builds it (defaults), once per model content
    and per index definition (file format, sources, power, tokens averaged: a changed default never
    reuses an old file)."""
    definition = hashlib.sha256(json.dumps([FORMAT, DEFAULT_SOURCES, DEFAULT_POWER, MASS_OF[0]]).encode()).hexdigest()[:12]
    path = model_work(work, model_dir) / f"pool-index-{definition}.safetensors"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        build_index(model_dir, list(DEFAULT_SOURCES)).save(path)
    return path


def mode_settings(mode: str, budget: str, model_dir: Path, work: Path) -> PoolSettings:
    options = dict(MODES[mode])
    if options.get("pool_index") == INDEXED:
        options["pool_index"] = str(model_index(model_dir, work))
    return PoolSettings(pool=budget, **options)


def retained(full_nll: list[float], nll: list[float], pairs: list[dict]) -> dict[str, float]:
    """Quality retained per group of `groups` that holds a pair (domains, then math's families): the
    full model's bits per byte / the row's, over the group's pairs."""
    out = {}
    for name, idx in groups(pairs).items():
        if idx:
            sub = [pairs[i] for i in idx]
            out[name] = bpb([full_nll[i] for i in idx], sub) / bpb([nll[i] for i in idx], sub)
    return out


@torch.no_grad()
def whole_nll(model, pair: dict) -> float:
    ids = pair["context"] + pair["answer"]
    logits = model(input_ids=torch.tensor([ids[:-1]])).logits[0, len(pair["context"]) - 1 :].float()
    return F.cross_entropy(logits, torch.tensor(pair["answer"]), reduction="sum").item()


def bpb(nlls: list[float], pairs: list[dict]) -> float:
    return sum(nlls) / sum(p["bytes"] for p in pairs) / math.log(2)


def groups(pairs: list[dict]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {d: [i for i, p in enumerate(pairs) if p["domain"] == d] for d in DOMAINS}
    for name in [f[0] for f in FAMILIES] + ["word problems"]:
        out[f"math: {name}"] = [i for i, p in enumerate(pairs) if p["family"] == name]
    return out


def spearman(x: list[float], y: list[float]) -> float:
    def ranks(v):
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        for rank, i in enumerate(order):
            r[i] = float(rank)
        return torch.tensor(r)

    rx, ry = ranks(x), ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    return float((rx * ry).sum() / (rx.norm() * ry.norm()))


def quality(label: str, model_dir: Path, work: Path, pairs: list[dict]) -> dict:
    """Per-document answer NLL of the full model, the static subsets and every pool mode."""
    nll: dict[str, list[float]] = {}
    full = load_pretrained(model_dir, torch.float32)
    nll["full"] = [whole_nll(full, p) for p in pairs]
    del full
    coverage = {}
    for budget in BUDGETS:
        static = [0.0] * len(pairs)
        for domain in DOMAINS:
            build = domain_build(model_dir, work / label, domain, budget)
            model = load_pretrained(build, torch.float32)
            for i, p in enumerate(pairs):
                if p["domain"] == domain:
                    static[i] = whole_nll(model, p)
            if domain == "code" and budget == "0.25":  # the coverage guard, on every document
                meter = CoverageMeter.of_build(model, build)
                build_nll = [whole_nll(model, p) for p in pairs]
                coverage = {
                    "coverage": [meter.of_tokens(p["context"]).value for p in pairs],
                    "loss": [(b - f) / p["bytes"] / math.log(2) for b, f, p in zip(build_nll, nll["full"], pairs)],
                }
            del model
        nll[f"static {budget}"] = static
        for mode in MODES:
            runtime = load_pool_runtime(model_dir, mode_settings(mode, budget, model_dir, work / label))
            scores, resident = [], []
            for p in pairs:
                logprobs, _, report = runtime.score(p["context"], p["answer"])
                scores.append(-float(logprobs.sum()))
                resident.append(report.resident_expert_bytes)
            nll[f"{mode} {budget}"] = scores
            nll[f"{mode} {budget} resident"] = resident
        print(f"{label}: budget {budget} done", flush=True)
    return {"nll": nll, "coverage": coverage}


def cache_trace(settings: PoolSettings, model_dir: Path, pairs: list[dict], seed: int = 0) -> dict:
    """Hit rates of LRU, LFU (the real ExpertStore) and Belady (simulated) over a mixed request stream."""
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    runtime = load_pool_runtime(model_dir, settings)
    trace = []
    for i in order:
        runtime.prefill(pairs[i]["context"])
        trace.append([(layer, e) for layer, ids in runtime.request.pools.items() for e in ids])
    store = runtime.store
    total_experts = sum(lay.num_experts for lay in runtime.layouts if not lay.is_dense)
    capacity = total_experts // 2
    rates = {}
    for policy in ("lru", "lfu"):
        s = ExpertStore(store.checkpoint, dtype=torch.float32, budget_bytes=capacity * store.expert_nbytes(0), policy=policy)
        for request in trace:
            for key in request:
                s.get(*key)
        rates[policy] = s.stats.hits / (s.stats.hits + s.stats.misses)
    rates["belady"] = belady([k for request in trace for k in request], capacity)
    return {"capacity_experts": capacity, "of_experts": total_experts, "requests": len(trace), **rates}


def belady(accesses: list, capacity: int) -> float:
    """Hit rate of optimal replacement: evict the cached key whose next use is farthest away."""
    next_use = [0] * len(accesses)
    last: dict = {}
    for i in range(len(accesses) - 1, -1, -1):
        next_use[i] = last.get(accesses[i], math.inf)
        last[accesses[i]] = i
    cache: dict = {}  # key -> its next use
    hits = 0
    for i, key in enumerate(accesses):
        if key in cache:
            hits += 1
        elif len(cache) >= capacity:
            del cache[max(cache, key=cache.get)]
        cache[key] = next_use[i]
    return hits / len(accesses)


CHILD = r"""
import json, sys, time, torch
torch.set_num_threads(1)
from emo_prune.process.memory import peak_rss_bytes
from emo_prune.serve.generate import Generator
from emo_prune.serve.settings import PoolSettings
model, pool, expert_bytes = sys.argv[1], sys.argv[2], int(sys.argv[3])
# pools: the shared expert cache may hold one request's pool (the budget fraction of all experts' bytes)
settings = None if pool == "whole" else PoolSettings(pool=pool, cache_budget=int(float(pool) * expert_bytes))
generator = Generator(model, pool=settings)  # loaded once, 8 requests served, as a server would
texts = [generator.tokenizer.decode(list(range(10 + i, 10 + i + 48))) for i in range(8)]
pre = dec = 0.0; npre = ndec = 0
for text in texts:
    r = generator.generate(text, max_new_tokens=32)
    pre += r.prefill_seconds; dec += r.decode_seconds; npre += r.prompt_tokens; ndec += r.new_tokens
print(json.dumps({"peak_rss": peak_rss_bytes(), "prefill_tps": npre / pre, "decode_tps": ndec / dec}))
"""


def memory_speed(work: Path) -> dict:
    """Peak RSS and tokens/s of whole vs pool processes on a synthetic checkpoint, each in a fresh process."""
    from emo_prune.testing import write_tiny_model

    model = work / "synthetic"
    if not (model / "config.json").exists():
        write_tiny_model(
            model,
            "emo",
            layers=4,
            hidden=512,
            heads=8,
            kv_heads=8,
            experts=32,
            top_k=4,
            expert_width=512,
            shared=1,
            vocab_size=512,
        )
    expert_bytes = 4 * 32 * 3 * 512 * 512 * 4  # fp32
    rows = {}
    for pool in ("whole", "0.25", "0.125"):
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(model), pool, str(expert_bytes)], capture_output=True, text=True, check=True
        )
        rows[pool] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"memory/speed {pool}: {rows[pool]}", flush=True)
    return {"expert_bytes": expert_bytes, "rows": rows}


def markdown(result: dict) -> str:
    lines = []
    head = ["domain", "model", "full bpb"]
    for budget in BUDGETS:
        head += [f"{name} {float(budget):.1%}" for name in ["static", *MODES]]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, q in result["quality"].items():
        for name, idx in result["groups"].items():
            if not idx:
                continue
            sub = [result["pairs_meta"][i] for i in idx]
            full = bpb([q["nll"]["full"][i] for i in idx], sub)
            cells = [name, label, f"{full:.3f}"]
            for budget in BUDGETS:
                for mode in ["static", *MODES]:
                    key = f"{mode} {budget}"
                    if mode == "static" and name.startswith("math: "):
                        cells.append("-")
                        continue
                    value = bpb([q["nll"][key][i] for i in idx], sub)
                    cells.append(f"{value:.3f} ({full / value:.2f})")
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("| model | budget | mode | resident expert bytes per request (mean) | of all experts |")
    lines.append("|---|---|---|---|---|")
    for label, q in result["quality"].items():
        for budget in BUDGETS:
            for mode in MODES:
                r = q["nll"][f"{mode} {budget} resident"]
                mean = sum(r) / len(r)
                lines.append(
                    f"| {label} | {budget} | {mode} | {mean / 1e6:.3f} MB | {mean / result['all_expert_bytes'][label]:.3f} |"
                )
    if result.get("memory"):
        m = result["memory"]
        whole = m["rows"]["whole"]
        lines += [
            "",
            "| process (synthetic 4 x 32 experts, fp32) | peak RSS | saved vs whole | dropped expert bytes | prefill tok/s (x whole) | decode tok/s (x whole) |",
            "|---|---|---|---|---|---|",
        ]
        for pool, row in m["rows"].items():
            dropped = 0 if pool == "whole" else m["expert_bytes"] * (1 - float(pool))
            lines.append(
                f"| {pool} | {row['peak_rss'] / 1e6:.0f} MB | {(whole['peak_rss'] - row['peak_rss']) / 1e6:.0f} MB | {dropped / 1e6:.0f} MB | "
                f"{row['prefill_tps']:.0f} ({row['prefill_tps'] / whole['prefill_tps']:.2f}) | {row['decode_tps']:.0f} ({row['decode_tps'] / whole['decode_tps']:.2f}) |"
            )
    lines += [
        "",
        "| model | pool, mode | cache (experts) | LRU hit rate | LFU hit rate | Belady (bound) |",
        "|---|---|---|---|---|---|",
    ]
    for label, per in result["cache"].items():
        for budget, c in per.items():
            lines.append(
                f"| {label} | {budget} | {c['capacity_experts']} of {c['of_experts']} | {c['lru']:.2f} | {c['lfu']:.2f} | {c['belady']:.2f} |"
            )
    lines += ["", "| model | Spearman(coverage, quality loss), code 25% build, all answer documents |", "|---|---|"]
    for label, rho in result["spearman"].items():
        lines.append(f"| {label} | {rho:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "emo-prune-pools")
    parser.add_argument("--quick", action="store_true", help="12 documents per domain, no memory/speed processes")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--memory-only", action="store_true", help="rerun the memory/speed processes into --out's pools.json")
    args = parser.parse_args(argv)
    if args.memory_only:
        result = json.loads((args.out / "pools.json").read_text())
        result["memory"] = memory_speed(args.work)
        (args.out / "pools.json").write_text(json.dumps(result) + "\n")
        (args.out / "pools.md").write_text(markdown(result))
        print(markdown(result))
        return 0
    torch.set_num_threads(1)  # a shared 2-core machine: one thread, steadier numbers
    from transformers import AutoTokenizer

    started = time.perf_counter()
    result: dict = {"quality": {}, "cache": {}, "spearman": {}, "all_expert_bytes": {}}
    for label, ref in MODELS.items():
        model_dir = resolve_model(ref)
        pairs = load_pairs(AutoTokenizer.from_pretrained(model_dir), 12 if args.quick else None)
        result["pairs_meta"] = [{"bytes": p["bytes"], "domain": p["domain"], "family": p["family"]} for p in pairs]
        result["groups"] = groups(pairs)
        q = quality(label, model_dir, args.work, pairs)
        result["quality"][label] = q
        result["spearman"][label] = spearman(q["coverage"]["coverage"], q["coverage"]["loss"])
        result["cache"][label] = {
            f"{b} {mode}": cache_trace(mode_settings(mode, b, model_dir, args.work / label), model_dir, pairs)
            for b in BUDGETS
            for mode in ("pool", "pool+index")
        }
        store = ExpertStore.open(model_dir, torch.float32)
        result["all_expert_bytes"][label] = sum(store.expert_nbytes(l.index) * l.num_experts for l in store.arch.moe_layers)
    if not args.quick:
        result["memory"] = memory_speed(args.work)
    result["seconds"] = round(time.perf_counter() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pools.json").write_text(json.dumps(result) + "\n")
    text = markdown(result)
    (args.out / "pools.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
