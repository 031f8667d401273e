"""Why a domain subset loses more on math than on code: per-document pools vs one pool per domain.

    python examples/experiments/document_pools.py                      # bundled emo-small, held-out docs of every domain

EMO trains every document on its own pool of experts (the top-P by the document's summed router
probability). A pruned model instead gives a whole domain ONE pool. This script measures, on the
held-out documents of each domain (recipes/tasks/data/ppl_*.jsonl), bits per byte of:
  full      the unpruned model (token-level top-k over all experts)
  doc-pool  EMO's own evaluation mode: each document restricted to its own top-P routed experts
            (P = the routed experts of a 25% and a 12.5% subset, the shared one not counted: 15 and 7
            of the bundled model's 63); an oracle, since the pool is chosen from the whole document
If doc-pool stays near full while the domain subset (examples/experiments/modularity_table.py) does not, single
documents need few experts but the domain's documents do not agree on which.
"""

from __future__ import annotations

import argparse
import json
import math

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer

import emo_prune  # noqa: F401
from emo_prune.eval import builtin_tasks_dir
from emo_prune.models.builtin import resolve_model
from emo_prune.train.objective import RoutingContext, install_pool_routers

DOMAINS = ("code", "prose", "math")


def documents(domain: str, limit: int) -> list[str]:
    path = builtin_tasks_dir() / "data" / f"ppl_{domain}.jsonl"
    return [json.loads(line)["text"] for line in path.read_text().splitlines()[:limit]]


@torch.no_grad()
def bits_per_byte(model, tokenizer, texts: list[str], context: RoutingContext | None, pool: int | None, window: int) -> float:
    nll, n_bytes = 0.0, 0
    for text in texts:
        ids = [tokenizer.eos_token_id, *tokenizer(text)["input_ids"]][: window + 1]  # EOS starts a document
        scored = tokenizer.decode(ids[1:])
        x = torch.tensor([ids])
        if context is not None:
            context.doc_ids = torch.zeros(len(ids), dtype=torch.long)
            context.pool_sizes = torch.tensor([pool])
            context.lb_terms.clear(), context.z_terms.clear(), context.usage.clear()
        logits = model(x).logits[0, :-1].float()
        nll += F.cross_entropy(logits, x[0, 1:], reduction="sum").item()
        n_bytes += len(scored.encode("utf-8"))
    return nll / n_bytes / math.log(2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="builtin:emo-small")
    parser.add_argument("--docs", type=int, default=48, help="held-out documents per domain")
    parser.add_argument("--window", type=int, default=1024, help="tokens scored per document (its start)")
    args = parser.parse_args()
    model_dir = resolve_model(args.model)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    full = {d: bits_per_byte(model, tokenizer, documents(d, args.docs), None, None, args.window) for d in DOMAINS}
    experts, shared = model.config.num_experts, model.config.num_shared_experts or 0
    pools = {name: round(experts * fraction) - shared for name, fraction in (("25%", 0.25), ("12.5%", 0.125))}  # routed
    context = RoutingContext(objective="emo")
    install_pool_routers(model, context)
    rows = []
    for domain in DOMAINS:
        texts = documents(domain, args.docs)
        row = {"domain": domain, "full": full[domain]}
        for pool in pools.values():
            row[f"doc_pool_{pool}"] = bits_per_byte(model, tokenizer, texts, context, pool, args.window)
        rows.append(row)
        print(json.dumps(row), flush=True)
    heads = " | ".join(f"per-document pool of {pool} routed ({name})" for name, pool in pools.items())
    print(f"\n| domain | full bpb | {heads} |")
    print("|---|---|---|---|")
    for r in rows:
        cells = " | ".join(f"{r[f'doc_pool_{pool}']:.3f} ({r['full'] / r[f'doc_pool_{pool}']:.2f})" for pool in pools.values())
        print(f"| {r['domain']} | {r['full']:.3f} | {cells} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
