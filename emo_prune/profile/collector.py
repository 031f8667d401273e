"""Statistics collection: hooks on each MoE layer's router and experts, sums kept on the compute device.

Shapes: L layers, E_max experts of the widest layer, E experts of this layer, T = B*S flattened
tokens of a batch (padding included; a float mask zeroes it), k experts per token, P = T*k pairs.

Per batch and MoE layer, with p = router probabilities (emo_prune.routing.router_probabilities: the
model's softmax, EMO's routed / shared blocks separately) and m the non-padding mask:
  prob_mass[l]   += sum_t m_t p_t                     (router hook, float64)
  entropy[l]     += sum_t m_t H(p_t)                  H in nats; for EMO's split softmax it is
                                                      H(routed block) + H(shared block)
  pools          from per-document sums of p          (pools.py)
  tokens[l, e]   += routed pairs (t, e) with m_t = 1  (experts hook: the picks the experts ran)
  gate_weight    += routing weight of those pairs
  reap           += routing weight x ||expert output|| of those pairs
No per-token tensor outlives its batch; nothing is copied to the host until `finish`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from emo_prune.arch import FamilySpec, LayerLayout
from emo_prune.profile.batches import Batch
from emo_prune.profile.experts import check_experts_module, instrumented_forward
from emo_prune.profile.pools import DocumentGroups, DocumentPools
from emo_prune.profile.store import EXPERT_STATS, DomainStats
from emo_prune.routing import router_probabilities


@dataclass
class BatchContext:
    domain: str
    mask: torch.Tensor  # [T] float64, 1 on real tokens
    rows: int  # B
    groups: DocumentGroups


class StatsCollector:
    def __init__(self, layouts: list[LayerLayout], domains: list[str], device: torch.device | str):
        self.layouts = layouts
        self.device = torch.device(device)
        width = max((lay.num_experts for lay in layouts), default=0)
        self.sums = {
            d: {s: torch.zeros(len(layouts), width, dtype=torch.float64, device=self.device) for s in (*EXPERT_STATS, "entropy")}
            for d in domains
        }  # domain -> stat -> [L, E_max] ("entropy" uses column 0)
        self.num_tokens = dict.fromkeys(domains, 0)
        self.num_documents = dict.fromkeys(domains, 0)
        self.pools = {
            d: {lay.index: DocumentPools(lay, self.device) for lay in layouts if not lay.is_dense} for d in domains
        }
        self._ctx: BatchContext | None = None

    # ---- per batch ----------------------------------------------------------------------------
    def context(self, batch: Batch) -> BatchContext:
        mask = batch.attention_mask.reshape(-1).to(self.device, torch.float64)
        return BatchContext(batch.domain, mask, batch.shape[0], DocumentGroups.of(batch.doc_ids, batch.last_window, self.device))

    def activate(self, ctx: BatchContext | None) -> None:
        self._ctx = ctx

    def count(self, batch: Batch) -> None:
        """Token and document counts; once per batch (not per layer)."""
        self.num_tokens[batch.domain] += batch.num_tokens
        self.num_documents[batch.domain] += batch.num_documents

    # ---- hooks --------------------------------------------------------------------------------
    def attach(self, layer: nn.Module, layout: LayerLayout, family: FamilySpec) -> Callable[[], None]:
        """Instrument one decoder layer; returns the function that removes the instrumentation."""
        if layout.is_dense:
            return lambda: None
        where = f"layer {layout.index}"
        router = layer.get_submodule(family.router.module)
        experts = layer.get_submodule(family.experts.module)
        check_experts_module(experts, where)
        handle = router.register_forward_hook(lambda _m, _i, output: self._on_router(layout, output))
        experts.forward = instrumented_forward(experts, partial(self._on_experts, layout))  # instance attribute

        def detach() -> None:
            handle.remove()
            del experts.forward

        return detach

    def _on_router(self, layout: LayerLayout, output) -> None:
        ctx = self._ctx
        if ctx is None:
            return
        logits = output[0] if isinstance(output, tuple) else output  # [T, E]
        l, E = layout.index, layout.num_experts
        sums = self.sums[ctx.domain]
        probs = router_probabilities(logits.reshape(-1, E), layout.routing_spec()).double()  # [T, E]
        sums["prob_mass"][l, :E] += ctx.mask @ probs
        entropy = -torch.special.xlogy(probs, probs).sum(dim=-1)  # [T]
        sums["entropy"][l, 0] += ctx.mask @ entropy
        row_sums = (probs * ctx.mask[:, None]).view(ctx.rows, -1, E).sum(dim=1)  # [B, E]
        self.pools[ctx.domain][l].add(row_sums, ctx.groups, {s: sums[s][l, :E] for s in ("pool_25", "pool_12")})

    def _on_experts(
        self, layout: LayerLayout, ids: torch.Tensor, weights: torch.Tensor, norms: torch.Tensor, token_of: torch.Tensor
    ) -> None:
        ctx = self._ctx
        if ctx is None:
            return
        l, E = layout.index, layout.num_experts
        sums = self.sums[ctx.domain]
        m = ctx.mask[token_of]  # [P]
        w = weights.double() * m
        sums["tokens"][l, :E] += torch.bincount(ids, weights=m, minlength=E)
        sums["gate_weight"][l, :E] += torch.bincount(ids, weights=w, minlength=E)
        sums["reap"][l, :E] += torch.bincount(ids, weights=w * norms.double(), minlength=E)

    # ---- results ------------------------------------------------------------------------------
    def flat(self) -> torch.Tensor:
        """Every sum and count in one float64 vector (for a distributed all_reduce)."""
        parts = []
        for d, stats in self.sums.items():
            parts.extend(stats[s].reshape(-1) for s in (*EXPERT_STATS, "entropy"))
            parts.append(torch.tensor([self.num_tokens[d], self.num_documents[d]], dtype=torch.float64, device=self.device))
        return torch.cat(parts)

    def load_flat(self, vector: torch.Tensor) -> None:
        offset = 0
        for d, stats in self.sums.items():
            for s in (*EXPERT_STATS, "entropy"):
                n = stats[s].numel()
                stats[s].copy_(vector[offset : offset + n].view_as(stats[s]))
                offset += n
            self.num_tokens[d], self.num_documents[d] = (int(v) for v in vector[offset : offset + 2].tolist())
            offset += 2

    def finish(self) -> dict[str, DomainStats]:
        result = {}
        for d, stats in self.sums.items():
            result[d] = DomainStats(
                name=d,
                expert={s: stats[s].cpu().numpy().copy() for s in EXPERT_STATS},
                entropy=stats["entropy"][:, 0].cpu().numpy().copy(),
                num_tokens=self.num_tokens[d],
                num_documents=self.num_documents[d],
            )
        return result
