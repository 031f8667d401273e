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
  ean            += ||expert output|| of those pairs
  easy_ep        += routing weight x ||expert output|| x (1 - cos(h_t, h_t + y_t)) of those pairs, h the
                    MoE block's input [T, H] and y its output [T, H] (block hooks: the pairs' products
                    wait for the block's output, one batch and layer at a time)
  sample         tokens' top-k sets, bottom-N by priority (topk_sample.py): [L, N, k_max] on device
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
from emo_prune.profile.topk_sample import SAMPLE_SIZE, TopkSample, priority_seed
from emo_prune.routing import router_probabilities

#: rows per float64 chunk of the EASY-EP token weight: 1024 x H 4096 x 8 bytes x 3 tensors ~ 100 MB at most
WEIGHT_CHUNK = 1024


def easy_ep_token_weight(h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """1 - cos(h_t, h_t + y_t) per token: h, y [T, H] -> [T] float64.

    In float64, because the tiny models' (and well-trained layers') outputs are small next to h, so the
    weight is ~1e-6 and float32 cancellation would cost it a few digits; chunked, so the float64 copies
    of a long batch stay bounded (WEIGHT_CHUNK)."""
    parts = []
    for start in range(0, h.shape[0], WEIGHT_CHUNK):
        hc = h[start : start + WEIGHT_CHUNK].double()
        parts.append(1.0 - torch.nn.functional.cosine_similarity(hc, hc + y[start : start + WEIGHT_CHUNK].double(), dim=-1))
    return torch.cat(parts) if parts else h.new_zeros(0, dtype=torch.float64)


@dataclass
class BatchContext:
    domain: str
    mask: torch.Tensor  # [T] float64, 1 on real tokens
    priority: torch.Tensor  # [T] float64 in [0, 1), inf on padding (topk_sample.py)
    rows: int  # B
    groups: DocumentGroups


class StatsCollector:
    def __init__(
        self,
        layouts: list[LayerLayout],
        domains: list[str],
        device: torch.device | str,
        sample_size: int = SAMPLE_SIZE,
        rank: int = 0,
    ):
        self.layouts = layouts
        self.rank = rank
        self.device = torch.device(device)
        width = max((lay.num_experts for lay in layouts), default=0)
        self.sums = {
            d: {s: torch.zeros(len(layouts), width, dtype=torch.float64, device=self.device) for s in (*EXPERT_STATS, "entropy")}
            for d in domains
        }  # domain -> stat -> [L, E_max] ("entropy" uses column 0)
        self.num_tokens = dict.fromkeys(domains, 0)
        self.num_documents = dict.fromkeys(domains, 0)
        self.pools = {d: {lay.index: DocumentPools(lay, self.device) for lay in layouts if not lay.is_dense} for d in domains}
        self.width = max((lay.top_k for lay in layouts), default=0)
        self.samples = {
            d: (
                torch.full((len(layouts), sample_size, self.width), -1, dtype=torch.int32, device=self.device),
                torch.full((len(layouts), sample_size), float("inf"), dtype=torch.float64, device=self.device),
            )
            for d in domains
        }  # domain -> (ids [L, N, k_max], priority [L, N])
        self._batches = dict.fromkeys(domains, 0)  # contexts made per domain: the batch number of priorities
        self._pending: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}  # layer -> easy_ep parts
        self._block_input: dict[int, torch.Tensor] = {}  # layer -> MoE block input [T, H]
        self._ctx: BatchContext | None = None

    # ---- per batch ----------------------------------------------------------------------------
    def context(self, batch: Batch) -> BatchContext:
        mask = batch.attention_mask.reshape(-1).to(self.device, torch.float64)
        number = self._batches[batch.domain]
        self._batches[batch.domain] += 1
        generator = torch.Generator().manual_seed(priority_seed(batch.domain, number, self.rank))
        priority = torch.rand(mask.numel(), generator=generator, dtype=torch.float64).to(self.device)
        priority = torch.where(mask > 0, priority, float("inf"))
        groups = DocumentGroups.of(batch.doc_ids, batch.last_window, self.device)
        return BatchContext(batch.domain, mask, priority, batch.shape[0], groups)

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
        block = layer.get_submodule(family.experts.module.rpartition(".")[0])  # the MoE block around the experts
        check_experts_module(experts, where)
        handles = [
            router.register_forward_hook(lambda _m, _i, output: self._on_router(layout, output)),
            block.register_forward_pre_hook(lambda _m, args, kw: self._on_block_input(layout, args, kw), with_kwargs=True),
            block.register_forward_hook(lambda _m, _i, output: self._on_block_output(layout, output)),
        ]
        experts.forward = instrumented_forward(experts, partial(self._on_experts, layout))  # instance attribute

        def detach() -> None:
            for handle in handles:
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
        sums["ean"][l, :E] += torch.bincount(ids, weights=m * norms.double(), minlength=E)
        contribution = w * norms.double()  # [P]
        sums["reap"][l, :E] += torch.bincount(ids, weights=contribution, minlength=E)
        self._pending[l] = (ids, contribution, token_of)  # easy_ep: weighted once the block's output is known
        self._sample(l, ids, token_of, ctx)

    def _sample(self, l: int, ids: torch.Tensor, token_of: torch.Tensor, ctx: BatchContext) -> None:
        """Merge this batch's tokens' top-k sets into the domain's bottom-N sample of layer l."""
        T = ctx.mask.numel()
        by_token = ids[torch.argsort(token_of, stable=True)].view(T, -1)  # [T, k], each row one token's picks
        sets = torch.full((T, self.width), -1, dtype=torch.int32, device=self.device)
        sets[:, : by_token.shape[1]] = by_token.sort(dim=1).values.to(device=self.device, dtype=torch.int32)
        sample_ids, sample_priority = self.samples[ctx.domain]
        priority = torch.cat([sample_priority[l], ctx.priority])  # [N + T]
        kept = torch.topk(priority, sample_priority.shape[1], largest=False, sorted=True).indices  # [N]
        sample_priority[l] = priority[kept]
        sample_ids[l] = torch.cat([sample_ids[l], sets])[kept]
        sample_ids[l][torch.isinf(sample_priority[l])] = -1  # padding tokens are never sampled

    def _on_block_input(self, layout: LayerLayout, args: tuple, kwargs: dict) -> None:
        if self._ctx is not None:
            hidden = args[0] if args else kwargs["hidden_states"]
            self._block_input[layout.index] = hidden.reshape(-1, hidden.shape[-1])  # [T, H]

    def _on_block_output(self, layout: LayerLayout, output) -> None:
        ctx = self._ctx
        if ctx is None:
            return
        l, E = layout.index, layout.num_experts
        h = self._block_input.pop(l)  # [T, H]
        y = (output[0] if isinstance(output, tuple) else output).reshape(h.shape)  # [T, H]
        weight = easy_ep_token_weight(h, y)  # [T]
        ids, contribution, token_of = self._pending.pop(l)
        self.sums[ctx.domain]["easy_ep"][l, :E] += torch.bincount(ids, weights=contribution * weight[token_of], minlength=E)

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
                sample=TopkSample(*(t.cpu().numpy().copy() for t in self.samples[d])),
            )
        return result
