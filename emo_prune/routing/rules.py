"""Top-k routing of EMO-family MoE layers: the plain torch reference every other path must match.

Shapes: T tokens, E experts in the layer, k experts active per token (routed + shared/always-active).

Three paths, in the priority order of the EMO spec (docs/emo-checkpoint.md, "Forward"):
  1. always-active experts (AA): one fp32 softmax over all E; AA columns are excluded from the
     top-(k - |AA|) pick; every selected expert, AA included, is weighted by that same softmax.
  2. s shared experts (the LAST s of the layer, the released path): the routed block E-s gets its own
     fp32 softmax and a top-(k - s) pick; the shared block gets a separate softmax (weight 1.0 for s=1).
  3. plain: top-k of one softmax over all E (OLMoE, Mixtral, Qwen).
Softmax comes before top-k. `norm_topk_prob` renormalizes the weights that share one softmax: all k
for paths 1 and 3, the routed k - s for path 2 (the shared block has its own normalization already).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported in the functions: RoutingSpec is part of every header-only architecture
    import torch


@dataclass(frozen=True)
class RoutingSpec:
    """Everything routing needs to know about one MoE layer."""

    num_experts: int  # E, shared and always-active included
    top_k: int  # k, shared and always-active included
    num_shared: int = 0  # s: experts E-s .. E-1 are always on, separate softmax
    always_active: tuple[int, ...] = ()  # explicit always-on ids (path 1); overrides num_shared
    norm_topk_prob: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.top_k <= self.num_experts:
            raise ValueError(f"top_k={self.top_k} must be in 1..num_experts={self.num_experts}")
        fixed = len(self.always_active) if self.always_active else self.num_shared
        if fixed > self.top_k:
            raise ValueError(f"{fixed} always-on experts exceed top_k={self.top_k}")
        if any(not 0 <= e < self.num_experts for e in self.always_active):
            raise ValueError(f"always_active ids {self.always_active} out of range 0..{self.num_experts - 1}")

    @property
    def routed_top_k(self) -> int:
        """How many experts each token picks (k minus the always-on ones)."""
        if self.always_active:
            return self.top_k - len(self.always_active)
        return self.top_k - self.num_shared


def router_probabilities(logits: torch.Tensor, spec: RoutingSpec) -> torch.Tensor:
    """Probabilities exactly as the router sees them, fp32 [T, E].

    Shared path: the routed block and the shared block are softmaxed separately, so each row sums to
    2 (1 per block). Other paths: one softmax over all E.
    """
    import torch

    logits = logits.float()
    if spec.always_active or spec.num_shared == 0:
        return torch.softmax(logits, dim=-1)
    s = spec.num_shared
    routed = torch.softmax(logits[:, :-s], dim=-1)  # [T, E-s]
    shared = torch.softmax(logits[:, -s:], dim=-1)  # [T, s]
    return torch.cat([routed, shared], dim=-1)


def route(logits: torch.Tensor, spec: RoutingSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick experts for each token.

    logits: [T, E] router logits (any float dtype; math runs in fp32).
    Returns (weights [T, k] fp32, ids [T, k] int64); columns are the routed picks in descending
    probability, then the always-on experts (in the order the
    spec lists them: always-active ids as given, shared experts by descending weight).
    """
    return pick_experts(router_probabilities(logits, spec), spec)


def pick_experts(probs: torch.Tensor, spec: RoutingSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """The top-k pick of `route` from router probabilities [T, E] fp32 (`router_probabilities`); for
    callers that also need the probabilities (the trainer's load-balancing loss)."""
    import torch

    T = probs.shape[0]
    if spec.always_active:
        aa = torch.tensor(spec.always_active, device=probs.device, dtype=torch.long)
        pick_from = probs.index_fill(1, aa, float("-inf"))
        routed_w, routed_ids = torch.topk(pick_from, spec.routed_top_k, dim=-1)  # [T, k-|AA|]
        aa_ids = aa.expand(T, -1)  # [T, |AA|]
        weights = torch.cat([routed_w, probs.index_select(1, aa)], dim=-1)
        ids = torch.cat([routed_ids, aa_ids], dim=-1)
        if spec.norm_topk_prob:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        return weights, ids
    if spec.num_shared:
        s = spec.num_shared
        n_routed = spec.num_experts - s
        routed_w, routed_ids = torch.topk(probs[:, :n_routed], spec.routed_top_k, dim=-1)  # [T, k-s]
        if spec.norm_topk_prob and spec.routed_top_k:
            routed_w = routed_w / routed_w.sum(dim=-1, keepdim=True)
        shared_w, shared_ids = torch.topk(probs[:, n_routed:], s, dim=-1)  # [T, s]
        weights = torch.cat([routed_w, shared_w], dim=-1)
        ids = torch.cat([routed_ids, shared_ids + n_routed], dim=-1)
        return weights, ids
    weights, ids = torch.topk(probs, spec.top_k, dim=-1)  # [T, k]
    if spec.norm_topk_prob:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return weights, ids


def balance_loss(probs: torch.Tensor, picks: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Switch-style load balancing of one layer's ROUTED experts: E_r * sum_e f_e * p_e, and the counts.

    probs [T, E_r] fp32: the routed block's softmax; picks [T, k_r]: the routed experts each token went
    to (after any pool masking); mask [T]: 1 for tokens that count (None: all). f_e = share of the picks
    that went to e, p_e = mean probability of e. Returns (the term, pick counts [E_r]). The one loss of
    both the model's aux loss (`modeling_emo.load_balancing_loss`) and the trainer's global LB.
    """
    import torch

    T, k = picks.shape
    if mask is None:
        counts = torch.zeros_like(probs[0]).index_add_(0, picks.reshape(-1), torch.ones(T * k, device=probs.device))
        return probs.shape[1] * torch.sum(counts / (T * k) * probs.mean(dim=0)), counts
    counts = torch.zeros_like(probs[0]).index_add_(0, picks.reshape(-1), mask[:, None].expand_as(picks).reshape(-1))
    f = counts / (mask.sum() * k).clamp(min=1)  # [E_r]
    p = (probs * mask[:, None]).sum(0) / mask.sum().clamp(min=1)  # [E_r]
    return probs.shape[1] * torch.sum(f * p), counts


def top_pool(mass: torch.Tensor, size: int | torch.Tensor) -> torch.Tensor:
    """EMO's pool rule, defined once: the `size` routed experts of largest summed router probability.

    mass [..., E_r]: per document or request, the router's probabilities of its routed experts summed
    over its tokens (or another mass that stands in for them: p^a, an index's prior). size: routed
    experts in the pool, one int or one per row [...]; the caller's budget rule says how many (training
    samples P_d, the profile's budgets clamp to top-k, `--pool` counts the fixed experts and refuses).
    Returns [..., E_r] bool membership. Ties go to the LOWER index (a stable descending sort), so equal
    mass gives the same pool on every device and run; a size of 0 takes none, one >= E_r takes all.
    Used by training (train/objective.py), profiling (profile/pools.py, profile/report.py) and serving
    (pools/selection.py)."""
    import torch

    order = torch.sort(mass, dim=-1, descending=True, stable=True).indices  # [..., E_r]
    ranks = torch.empty_like(order)
    ranks.scatter_(-1, order, torch.arange(mass.shape[-1], device=mass.device).expand_as(order))  # rank of each expert
    sizes = torch.as_tensor(size, device=mass.device)
    return ranks < (sizes[..., None] if sizes.dim() else sizes)
