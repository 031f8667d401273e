"""A deliberately plain reference for the profile statistics, written from the spec and the issue.

It shares no code with emo_prune.profile or emo_prune.routing: each document is tokenized alone, each
of its windows runs alone (batch of one, no padding) through the unmodified transformers model, and
for every token and every MoE layer the statistics are computed in float64 with Python loops from
the router's logits and input, as the issue defines them.
EASY-EP follows arXiv 2504.06792 as the issue states it: per token, the routing weight times the
expert output's L2 norm, times (1 - cosine similarity) between the MoE layer's input h and h + its
output; the top-k sets are each token's picks, ids ascending.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer

import emo_prune  # noqa: F401  (registers EMO)


@dataclass
class RefLayer:
    E: int
    k: int
    shared: int = 0  # EMO tail-shared experts
    norm: bool = False
    pool_sizes: dict = field(default_factory=dict)  # stat -> routed pool size

    @property
    def routed(self) -> list[int]:
        return list(range(self.E - self.shared))


def probabilities(logits: list[float], lay: RefLayer) -> list[float]:
    def softmax(xs):
        m = max(xs)
        ex = [math.exp(x - m) for x in xs]
        return [e / sum(ex) for e in ex]

    if lay.shared:
        return softmax(logits[: lay.E - lay.shared]) + softmax(logits[lay.E - lay.shared :])
    return softmax(logits)


def picks(probs: list[float], lay: RefLayer) -> list[tuple[int, float]]:
    routed = sorted(lay.routed, key=lambda e: -probs[e])[: lay.k - lay.shared]
    chosen = [(e, probs[e]) for e in routed]
    if lay.norm:
        total = sum(w for _, w in chosen)
        chosen = [(e, w / total) for e, w in chosen]
    return chosen + [(e, probs[e]) for e in range(lay.E - lay.shared, lay.E)]


def reference_stats(model_dir, docs, seq_len: int, layers: dict[int, RefLayer], num_layers: int, max_e: int):
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    decoder = model.model
    captured: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    block_io: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # layer -> (MoE input [S, H], MoE output [S, H])
    sets: dict[str, dict[int, list[tuple[int, ...]]]] = {}
    for i in layers:
        decoder.layers[i].mlp.register_forward_hook(
            lambda m, inp, out, i=i: block_io.__setitem__(
                i,
                (inp[0].reshape(-1, inp[0].shape[-1]), (out[0] if isinstance(out, tuple) else out).reshape(-1, inp[0].shape[-1])),
            )
        )
        decoder.layers[i].mlp.gate.register_forward_hook(
            lambda m, inp, out, i=i: captured.__setitem__(i, (inp[0].reshape(-1, inp[0].shape[-1]), out[0]))
        )
    stats: dict[str, dict[str, torch.Tensor]] = {}
    counts: dict[str, list[int]] = {}
    for doc in docs:
        st = stats.setdefault(
            doc.domain,
            {
                s: torch.zeros(num_layers, max_e, dtype=torch.float64)
                for s in ("tokens", "prob_mass", "gate_weight", "reap", "pool_25", "pool_12", "easy_ep", "ean", "entropy")
            },
        )
        domain_sets = sets.setdefault(doc.domain, {i: [] for i in layers})
        c = counts.setdefault(doc.domain, [0, 0])
        ids = tokenizer(doc.text)["input_ids"] + [tokenizer.eos_token_id]
        doc_sum = {i: [0.0] * lay.E for i, lay in layers.items()}
        for start in range(0, len(ids), seq_len):
            window = ids[start : start + seq_len]
            c[0] += len(window)
            with torch.no_grad():
                decoder(input_ids=torch.tensor([window]))
            for i, lay in layers.items():
                x, logits = (t.detach() for t in captured[i])
                experts = decoder.layers[i].mlp.experts
                gate_up_w, down_w = experts.gate_up_proj.detach().double(), experts.down_proj.detach().double()
                h_in, h_out = (t.detach().double() for t in block_io[i])
                for t in range(len(window)):
                    cos = float(h_in[t] @ (h_in[t] + h_out[t])) / (
                        float(torch.linalg.vector_norm(h_in[t])) * float(torch.linalg.vector_norm(h_in[t] + h_out[t]))
                    )
                    p = probabilities(logits[t].double().tolist(), lay)
                    domain_sets[i].append(tuple(sorted(e for e, _ in picks(p, lay))))
                    st["entropy"][i, 0] -= sum(q * math.log(q) for q in p if q > 0)
                    for e in range(lay.E):
                        st["prob_mass"][i, e] += p[e]
                        doc_sum[i][e] += p[e]
                    for e, w in picks(p, lay):
                        xe = x[t].double()
                        gate, up = (gate_up_w[e] @ xe).chunk(2)
                        y = down_w[e] @ (F.silu(gate) * up)
                        st["tokens"][i, e] += 1
                        st["gate_weight"][i, e] += w
                        st["reap"][i, e] += w * float(torch.linalg.vector_norm(y))
                        st["ean"][i, e] += float(torch.linalg.vector_norm(y))
                        st["easy_ep"][i, e] += w * float(torch.linalg.vector_norm(y)) * (1.0 - cos)
        c[1] += 1
        for i, lay in layers.items():
            for stat, size in lay.pool_sizes.items():
                pool = sorted(lay.routed, key=lambda e: -doc_sum[i][e])[:size]
                for e in pool + list(range(lay.E - lay.shared, lay.E)):
                    st[stat][i, e] += 1
    return stats, counts, sets
