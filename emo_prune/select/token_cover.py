"""`--method coverage`: rank a layer's routed experts so that a kept prefix covers the most tokens.

A token is covered by a kept set S when every routed expert of its top-k set is in S (fixed experts
are always kept, so they are dropped from the sets first). The objective is
  cover(S) = sum over calibration tokens t of w_t * [T_t minus fixed is a subset of S]
estimated on the profile's bounded sample of tokens' top-k sets (profile/topk_sample.py: N tokens per
domain and layer; a sampled token of domain d weighs n_d / N_d / sum n, n_d the domain's tokens and
N_d its sampled tokens, so domains count by their tokens as the other methods' `weighted` combine).

Why a greedy over whole missing sets, not Shapley values nor a greedy over single experts:
  - cover() is a sum of unanimity games (a token pays only when ALL its experts are kept); the Shapley
    value of expert e is then exactly sum_t w_t [e in T_t] / |T_t|, i.e. frequency / k when every
    set has k members: Shapley on this game re-derives `--method frequency` and adds nothing.
  - a greedy that adds one expert at a time sees no gain from any single expert while k > 1 experts
    are missing, so it falls back to frequency and can miss the pairs that matter.
  - the classic greedy for budgeted maximum coverage with group costs does see them: each step adds
    the missing set U (U = T_t minus S of some uncovered sampled token t) of highest covered weight
    per added expert, cover(S + U) - cover(S) divided by |U| (ties: fewer experts, then lower ids).
    Its addition order is ONE ranking, so every budget keeps a prefix and subsets stay nested, as
    with the other profile methods; the value of each expert is its step's gain per expert (the
    global budget compares these across layers).
No approximation guarantee holds (cover() is supermodular, not submodular), and a budget that ends
inside a step's set keeps part of it; the tests check the optimum on cases where it is known.
Cost per step: [D, E] @ [E, U] for D distinct sampled sets and the U = CANDIDATE_SETS heaviest of
them; at most E steps per layer. Measured: E 128, k 8, N 2048 sampled tokens drawn from a skewed
(Dirichlet 0.3) expert popularity: 0.53 s per layer, 1 thread, on this project's 2-core machine.
"""

from __future__ import annotations

import numpy as np

from emo_prune.arch import LayerLayout
from emo_prune.profile.store import Profile

CANDIDATE_SETS = 256  # missing sets tried per step: the heaviest ones (a light set cannot win by much)


def token_sets(profile: Profile, domains: list[str], layer: int) -> tuple[list[tuple[int, ...]], np.ndarray]:
    """The sampled tokens' top-k sets of `domains` at `layer` and their weights [N_total] (summing to 1)."""
    sets: list[tuple[int, ...]] = []
    weights: list[float] = []
    total = sum(profile.domains[d].num_tokens for d in domains) if domains else 0
    for d in domains:
        sampled = profile.topk_sample(d).sets(layer)
        if not sampled:
            continue
        share = profile.domains[d].num_tokens / total if total > 0 else 1.0 / len(domains)
        sets.extend(sampled)
        weights.extend([share / len(sampled)] * len(sampled))
    return sets, np.asarray(weights, dtype=np.float64)


def coverage_ranking(
    layout: LayerLayout, candidates: list[int], sets: list[tuple[int, ...]], weights: np.ndarray
) -> tuple[list[int], list[float]]:
    """Candidates (routed ids) best first by the greedy above, and each one's gain per expert."""
    fixed = set(layout.fixed_ids)
    allowed = set(candidates)
    E = layout.num_experts
    # distinct reachable sets of routed experts and their summed weights
    merged: dict[tuple[int, ...], float] = {}
    for members, w in zip(sets, weights.tolist()):
        routed = tuple(e for e in members if e not in fixed)
        if routed and all(e in allowed for e in routed):  # a set with a non-candidate can never be covered
            merged[routed] = merged.get(routed, 0.0) + w
    keys = sorted(merged)
    member = np.zeros((len(keys), E), dtype=np.float64)  # [D, E] one row per distinct set
    for row, key in enumerate(keys):
        member[row, list(key)] = 1.0
    weight = np.array([merged[k] for k in keys], dtype=np.float64)  # [D]
    kept = np.zeros(E, dtype=bool)
    order: list[int] = []
    gains: list[float] = []
    while True:
        missing = member * ~kept  # [D, E]
        sizes = missing.sum(axis=1)  # [D]
        uncovered = sizes > 0
        if not uncovered.any():
            break
        heaviest = np.flatnonzero(uncovered)[np.argsort(-weight[uncovered], kind="stable")[:CANDIDATE_SETS]]
        outside = 1.0 - missing[heaviest]  # [U, E]: experts outside each candidate step
        fits = (missing @ outside.T == 0) & uncovered[:, None]  # [D, U]: set d completed by step u
        per_expert = (weight @ fits) / sizes[heaviest]  # [U]
        best = min(range(len(heaviest)), key=lambda u: (-per_expert[u], sizes[heaviest[u]], keys[heaviest[u]]))
        step = [int(e) for e in np.flatnonzero(missing[heaviest[best]])]
        # inside a step: the expert that more uncovered weight routes to first
        step.sort(key=lambda e: (-float(weight[uncovered] @ member[uncovered, e]), e))
        for e in step:
            kept[e] = True
            order.append(e)
            gains.append(float(per_expert[best]))
    rest = sorted(set(candidates) - set(order))  # in no reachable sampled set: nothing to cover
    return order + rest, gains + [0.0] * len(rest)


def cover(
    sets: list[tuple[int, ...]], weights: np.ndarray, kept: set[int], fixed: set[int] | frozenset[int] = frozenset()
) -> float:
    """cover(S): the weight of the sampled tokens whose whole top-k set is kept (or fixed)."""
    return float(sum(w for members, w in zip(sets, weights.tolist()) if all(e in kept or e in fixed for e in members)))
