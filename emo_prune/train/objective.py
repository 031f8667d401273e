"""Training-time routing of small EMO-style models: EMO's document pools vs standard top-k.

Shapes: T tokens (flattened batch), E experts (E_r = E - s routed, s = 1 shared at the tail), k
active per token (k - s routed + the shared one), D documents in the batch.

EMO (docs/emo-checkpoint.md, "EMO training objective"), per MoE layer:
  p   = softmax(routed logits)               [T, E_r] fp32
  s_d = sum of p over document d's tokens    [D, E_r] (no gradient: the pool choice is not trained)
  P_d ~ U[pool_min, pool_max] per document   (training; a fixed P for evaluation)
  routed experts outside the top-P_d of s_d get logit -inf for every token of d; softmax over the
  pool, top-(k - s), plus the shared expert with weight 1.0.
Standard: the same without pools. Both add, divided by the number of MoE layers,
  load balancing  0.1   * E_r * sum_e f_e * P_e   over the WHOLE batch (global LB): f_e = share of
                                                   routed picks that go to e, P_e = mean of p[:, e]
  router z-loss   0.001 * mean_t logsumexp(logits_t)^2
The routers are swapped in place for `PoolRouter`s during training; the saved checkpoint is plain EMO.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from emo_prune.models.emo.modeling_emo import EmoTopKRouter
from emo_prune.routing import balance_loss, pick_experts, router_probabilities, top_pool

NEG_INF = float("-inf")


@dataclass
class RoutingContext:
    """What the routers need from the batch; set by the trainer before every forward."""

    objective: str  # "emo" | "standard"
    doc_ids: torch.Tensor | None = None  # [T] document index per token, 0..D-1
    pool_sizes: torch.Tensor | None = None  # [D] routed pool size per document
    lb_terms: list[torch.Tensor] = field(default_factory=list)  # one scalar per MoE layer
    z_terms: list[torch.Tensor] = field(default_factory=list)
    usage: list[torch.Tensor] = field(default_factory=list)  # [E_r] pick counts per layer (diagnostics)


def document_pools(probs: torch.Tensor, doc_ids: torch.Tensor, pool_sizes: torch.Tensor) -> torch.Tensor:
    """Boolean pool membership per token [T, E_r]: expert in the top-P_d of its document's summed probability."""
    num_docs = pool_sizes.shape[0]
    summed = torch.zeros(num_docs, probs.shape[1], dtype=probs.dtype, device=probs.device)
    summed.index_add_(0, doc_ids, probs.detach())  # [D, E_r]
    in_pool = top_pool(summed, pool_sizes)  # [D, E_r]
    return in_pool[doc_ids]  # [T, E_r]


class PoolRouter(nn.Module):
    """Drop-in replacement of an EmoTopKRouter for training (same `weight` parameter)."""

    def __init__(self, router: EmoTopKRouter, context: RoutingContext):
        super().__init__()
        self.weight = router.weight  # [E, H], shared with the model: saving writes it back
        self.spec = router.spec
        self.context = context
        if self.spec.always_active or self.spec.num_shared != 1:
            raise ValueError("the trainer supports the released EMO layout: exactly one shared tail expert")

    def forward(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ctx = self.context
        logits = F.linear(hidden_states, self.weight)  # [T, E] router logits, in the model dtype as at inference
        full = router_probabilities(logits, self.spec)  # [T, E] fp32: routed softmax, then the shared expert's
        probs = full[:, :-1]  # [T, E_r]
        if ctx.objective == "emo":  # routed experts outside the document's pool leave the softmax and the pick
            in_pool = document_pools(probs, ctx.doc_ids, ctx.pool_sizes)  # [T, E_r]
            always_in = torch.ones_like(in_pool[:, :1])  # the shared expert
            full = router_probabilities(logits.masked_fill(~torch.cat([in_pool, always_in], dim=1), NEG_INF), self.spec)
        weights, ids = pick_experts(full, self.spec)  # [T, k] fp32: routed picks, then the shared expert
        balance, counts = balance_loss(probs, ids[:, :-1])  # f_e from the (pool-masked) routed picks
        ctx.lb_terms.append(balance)
        ctx.z_terms.append(torch.logsumexp(logits.float(), dim=-1).pow(2).mean())
        ctx.usage.append(counts.detach())
        return logits, weights.to(hidden_states.dtype), ids


def install_pool_routers(model: nn.Module, context: RoutingContext) -> list[PoolRouter]:
    routers = []
    for module in model.modules():
        gate = getattr(module, "gate", None)
        if isinstance(gate, EmoTopKRouter):
            module.gate = PoolRouter(gate, context)
            routers.append(module.gate)
    return routers
