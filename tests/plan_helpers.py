"""Helpers of the select / extract / verify tests (importable: this folder is on sys.path under pytest)."""

from __future__ import annotations

from typing import Any

import torch

from emo_prune.arch import MoEArchitecture, architecture_for_config
from emo_prune.profile.store import EXPERT_STATS, Profile


def emo_arch(layers: int = 3, experts: int = 16, top_k: int = 2, shared: int = 1, **extra: Any) -> MoEArchitecture:
    """An EMO architecture from a config dict alone (no weights): selection needs nothing more."""
    config = {
        "model_type": "emo",
        "num_hidden_layers": layers,
        "hidden_size": 8,
        "intermediate_size": 4,
        "num_experts": experts,
        "num_experts_per_tok": top_k,
        "num_shared_experts": shared,
        **extra,
    }
    return architecture_for_config(config)


def olmoe_arch(layers: int = 2, experts: int = 16, top_k: int = 2) -> MoEArchitecture:
    return architecture_for_config(
        {
            "model_type": "olmoe",
            "num_hidden_layers": layers,
            "hidden_size": 8,
            "intermediate_size": 4,
            "num_experts": experts,
            "num_experts_per_tok": top_k,
        }  # fmt: skip
    )


def random_profile(arch: MoEArchitecture, domains: dict[str, int], seed: int = 0, model: dict | None = None) -> Profile:
    """A profile with random but consistent sums: `domains` maps name -> token count."""
    g = torch.Generator().manual_seed(seed)
    profile = Profile(layouts=list(arch.layouts), model=model or {"digest": "synthetic", "path": "synthetic"})
    for name, tokens in domains.items():
        stats = profile.domain(name)
        stats.num_tokens, stats.num_documents = tokens, max(1, tokens // 50)
        for s in EXPERT_STATS:
            stats.expert[s] = (torch.rand(stats.expert[s].shape, generator=g, dtype=torch.float64) * tokens).numpy()
    return profile
