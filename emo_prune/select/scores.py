"""Per-expert scores and the per-layer ranking of routed experts they give.

Scores of one domain and layer are [E_l] float64, one per-token mean per expert, so domains of
different sizes are comparable:
  mass       mean router probability over the domain's tokens (AI2's statistic; EMO's routed and
             shared blocks softmaxed separately, as the profile records it)
  frequency  share of the domain's tokens routed to the expert (top-k picks)
  reap       mean REAP saliency over the tokens routed to the expert (0 for an expert never routed)
  easy_ep    EASY-EP (arXiv 2504.06792, AI2's easy_ep_prune.py): routing weight x ||expert output|| x
             (1 - cos(h, h + moe(h))) summed over the domain's tokens, divided by its token count
             (a per-domain constant: the ranking is the paper's sum; domains become comparable)
  coverage   not a score: a greedy ranking on tokens' top-k sets (emo_prune.select.token_cover)
  random     uniform noise from (seed, layer): the same for every domain
  greedy     mean router probability measured on the partly pruned model (emo_prune.select.greedy)

Several domains combine into ONE ranking per layer (so smaller budgets always pick a prefix of it,
which is what makes subsets nested). Domain weights are their token counts. With weighted score
  w(e) = sum_d n_d * s_d(e) / sum_d n_d:
  weighted  rank by w(e) descending
  union     rank by depth(e) = min over domains of the expert's rank in that domain (0 = someone's
            best), then by w(e) descending: keeping K therefore takes the union of every domain's
            top-r set for the deepest r that fits, and fills the rest from the next depth by w(e).
Ties always break towards the lower expert id.
"""

from __future__ import annotations

import hashlib

import numpy as np

from emo_prune.common.constants import COMBINES, METHODS, PROFILE_METHODS  # noqa: E402,F401 (re-exported)
from emo_prune.errors import PlanError
from emo_prune.profile.store import Profile


def profile_scores(profile: Profile, domain: str, method: str, layer: int) -> np.ndarray:
    """[E_l] float64 per-token mean statistic of `domain` at `layer`."""
    stats = profile.require_domain(domain)
    tokens = max(stats.num_tokens, 1)
    if method == "mass":
        return profile.mean_probability(domain, layer)
    if method == "frequency":
        return profile.stat(domain, "tokens", layer) / tokens
    if method == "reap":
        routed = profile.stat(domain, "tokens", layer)
        return profile.stat(domain, "reap", layer) / np.maximum(routed, 1)
    if method == "easy_ep":
        return profile.stat(domain, "easy_ep", layer) / tokens
    raise PlanError(f"method {method!r} does not read a profile (profile methods: {', '.join(PROFILE_METHODS)})")


def random_scores(num_experts: int, seed: int, layer: int) -> np.ndarray:
    """[E] float64 uniform noise, a pure function of (seed, layer) (torch's generator: plans made
    before scores were numpy stay reproducible)."""
    import torch

    key = int.from_bytes(hashlib.sha256(f"emo-prune:{seed}:{layer}".encode()).digest()[:8], "little")
    generator = torch.Generator().manual_seed(key)
    return torch.rand(num_experts, generator=generator, dtype=torch.float64).numpy()


def weighted_score(scores: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """sum_d n_d * s_d / sum_d n_d over the domains of `scores` ([E] float64; greedy's CPU torch tensors
    are read as arrays)."""
    arrays = {d: np.asarray(s, dtype=np.float64) for d, s in scores.items()}
    total = sum(weights[d] for d in arrays)
    if total <= 0:  # no tokens anywhere: plain mean
        return np.stack(list(arrays.values())).mean(0)
    return sum(weights[d] * s for d, s in arrays.items()) / total  # type: ignore[return-value]


def _order(ids: list[int], key: dict[int, tuple]) -> list[int]:
    return sorted(ids, key=lambda e: (*key[e], e))


def rank_routed(
    candidates: list[int],
    scores: dict[str, np.ndarray],
    weights: dict[str, float],
    combine: str = "union",
) -> tuple[list[int], list[float]]:
    """Rank `candidates` (routed expert ids) best first; returns (ids, their weighted scores)."""
    if combine not in COMBINES:
        raise PlanError(f"unknown --combine {combine!r} (known: {', '.join(COMBINES)})")
    w = weighted_score(scores, weights).tolist()
    by_weight = {e: (-w[e],) for e in candidates}
    if combine == "weighted" or len(scores) == 1:
        ranking = _order(candidates, by_weight)
    else:
        depth = {e: len(candidates) for e in candidates}
        for s in scores.values():
            values = s.tolist()
            for r, e in enumerate(_order(candidates, {e: (-values[e],) for e in candidates})):
                depth[e] = min(depth[e], r)
        ranking = _order(candidates, {e: (depth[e], -w[e]) for e in candidates})
    return ranking, [w[e] for e in ranking]
