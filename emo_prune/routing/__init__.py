"""Routing of EMO-family MoE layers: the plain torch reference every other path must match, and EMO's
pool rule (rules.py). `runtime/routing.py` dispatches the same routing to a Triton kernel on CUDA."""

from emo_prune.routing.rules import RoutingSpec, balance_loss, pick_experts, route, router_probabilities, top_pool

__all__ = ["RoutingSpec", "balance_loss", "pick_experts", "route", "router_probabilities", "top_pool"]
