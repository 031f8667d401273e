"""Selection from a profile: each method against a straightforward computation, budgets, nesting, refusals."""

from __future__ import annotations

import itertools

import pytest
import torch
from plan_helpers import emo_arch, olmoe_arch, random_profile

from emo_prune.errors import PlanError, ProfileError
from emo_prune.select import Keep, Plan, SelectOptions, coverage, keep_counts, select_experts


def straightforward(arch, profile, domain, method, keep):
    """Top (K - fixed) routed experts by the method's per-token statistic, plus the fixed ones."""
    d = profile.domains[domain]
    kept = []
    for lay in arch.layouts:
        E, fixed = lay.num_experts, list(lay.fixed_ids)
        K = round(keep * E)
        if method == "mass":
            score = [float(d.expert["prob_mass"][lay.index, e]) / d.num_tokens for e in range(E)]
        elif method == "frequency":
            score = [float(d.expert["tokens"][lay.index, e]) / d.num_tokens for e in range(E)]
        else:  # reap: mean saliency over the tokens routed to the expert
            reap, routed = d.expert["reap"][lay.index].tolist(), d.expert["tokens"][lay.index].tolist()
            score = [reap[e] / max(routed[e], 1.0) for e in range(E)]
        routed = [e for e in range(E) if e not in fixed]
        best = sorted(routed, key=lambda e: (-score[e], e))[: K - len(fixed)]
        kept.append(sorted(best) + fixed)
    return kept


@pytest.mark.parametrize("method", ["mass", "frequency", "reap"])
def test_profile_methods_match_straightforward_top_k(method):
    arch = emo_arch(layers=3, experts=16, shared=1)
    profile = random_profile(arch, {"code": 1000})
    plan = select_experts(arch, SelectOptions(keep="0.25", domains=("code",), method=method), profile)
    assert plan.experts_kept_per_layer == straightforward(arch, profile, "code", method, 0.25)
    # keep 0.25 of 16 = 4 experts: 3 routed + the shared expert 15, which comes last
    assert all(len(ids) == 4 and ids[-1] == 15 for ids in plan.experts_kept_per_layer)


def test_keep_count_includes_shared_and_always_active():
    arch = emo_arch(experts=16, shared=0, always_active_experts=[3, 9], top_k=4)
    profile = random_profile(arch, {"code": 100})
    plan = select_experts(arch, SelectOptions(keep="5", domains=("code",)), profile)
    for ids in plan.experts_kept_per_layer:
        assert len(ids) == 5 and ids[-2:] == [3, 9]  # always-active last, ascending
        assert ids[:3] == sorted(ids[:3])


def test_coverage_is_kept_share_of_routed_mass():
    arch = emo_arch(layers=2, experts=8, shared=1)
    profile = random_profile(arch, {"math": 500})
    plan = select_experts(arch, SelectOptions(keep="0.5", domains=("math",)), profile)
    mass = profile.domains["math"].expert["prob_mass"]
    for layer, ids in enumerate(plan.experts_kept_per_layer):
        routed_kept = [e for e in ids if e != 7]
        expected = float(mass[layer, routed_kept].sum() / mass[layer, :7].sum())
        assert plan.coverage["math"][layer] == pytest.approx(expected, abs=1e-12)
    assert coverage(profile, "math", plan.experts_kept_per_layer) == plan.coverage["math"]


def union_straightforward(scores: dict[str, list[float]], weights: dict[str, float], candidates: list[int], n: int):
    """The documented union rule, computed set by set: deepest r whose union of top-r sets fits, filled by weighted score."""
    total = sum(weights.values())
    w = {e: sum(weights[d] * scores[d][e] for d in scores) / total for e in candidates}
    tops = {d: sorted(candidates, key=lambda e: (-s[e], e)) for d, s in scores.items()}
    chosen: set[int] = set()
    for r in range(1, len(candidates) + 1):
        layer = set().union(*(t[:r] for t in tops.values()))
        if len(layer) > n:
            fill = sorted(layer - chosen, key=lambda e: (-w[e], e))[: n - len(chosen)]
            return sorted(chosen | set(fill))
        chosen = layer
    return sorted(chosen)


@pytest.mark.parametrize("combine", ["union", "weighted"])
def test_two_domains_combine_rule(combine):
    arch = emo_arch(layers=2, experts=16, shared=1)
    profile = random_profile(arch, {"code": 300, "math": 900}, seed=3)
    plan = select_experts(arch, SelectOptions(keep="0.5", domains=("code", "math"), combine=combine), profile)
    for lay, ids in zip(arch.layouts, plan.experts_kept_per_layer):
        scores = {
            d: (profile.domains[d].expert["prob_mass"][lay.index, :16] / profile.domains[d].num_tokens).tolist()
            for d in ("code", "math")
        }
        routed = list(range(15))
        if combine == "union":
            expected = union_straightforward(scores, {"code": 300, "math": 900}, routed, 7)
        else:
            w = {e: (300 * scores["code"][e] + 900 * scores["math"][e]) / 1200 for e in routed}
            expected = sorted(sorted(routed, key=lambda e: (-w[e], e))[:7])
        assert ids == expected + [15]


def test_union_keeps_each_domains_favourite():
    arch = emo_arch(layers=1, experts=8, shared=0, top_k=2)
    profile = random_profile(arch, {"big": 10_000, "small": 10})
    big, small = profile.domains["big"].expert["prob_mass"], profile.domains["small"].expert["prob_mass"]
    big[0] = torch.tensor([8.0, 7, 6, 5, 4, 3, 2, 1]) * 1000
    small[0] = torch.tensor([0.0, 0, 0, 0, 0, 0, 0, 9]) * 10
    union = select_experts(arch, SelectOptions(keep="2", domains=("big", "small")), profile)
    weighted = select_experts(arch, SelectOptions(keep="2", domains=("big", "small"), combine="weighted"), profile)
    assert union.experts_kept_per_layer == [[0, 7]]  # each domain's best expert
    assert weighted.experts_kept_per_layer == [[0, 1]]  # the big domain outweighs


OPTIONS = [
    dict(method=m, budget=b, combine=c)
    for m in ("mass", "frequency", "reap", "random")
    for b in ("uniform", "global")
    for c in ("union", "weighted")
]


@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "-".join(o.values()))
def test_subsets_are_nested(opts):
    arch = emo_arch(layers=3, experts=32, shared=1, top_k=3)
    profile = random_profile(arch, {"code": 700, "math": 400}, seed=1)
    sets = [
        select_experts(arch, SelectOptions(keep=k, domains=("code", "math"), **opts), profile).experts_kept_per_layer
        for k in ("0.5", "0.25", "0.125")
    ]
    for larger, smaller in itertools.pairwise(sets):
        for big, small in zip(larger, smaller):
            assert set(small) <= set(big)  # a global budget may leave one layer unchanged
        assert sum(map(len, smaller)) < sum(map(len, larger))


def test_global_budget_spends_the_uniform_total_where_mass_is_spread():
    arch = emo_arch(layers=2, experts=16, shared=1, top_k=2)
    profile = random_profile(arch, {"code": 1000})
    mass = profile.domains["code"].expert["prob_mass"]
    mass[0, :15] = torch.tensor([900.0, 50, 20, 10] + [2.0] * 11)  # concentrated
    mass[1, :15] = torch.full((15,), 60.0) + torch.arange(15.0)  # spread
    plan = select_experts(arch, SelectOptions(keep="0.25", domains=("code",), budget="global"), profile)
    counts = plan.kept_counts()
    assert sum(counts) == 2 * 4 and counts[1] > counts[0] >= 2  # same total, every layer >= top-k


def test_global_allocation_maximizes_summed_share():
    """Brute force over every allocation: ours reaches the best summed per-layer kept share."""
    arch = emo_arch(layers=3, experts=8, shared=1, top_k=2)
    profile = random_profile(arch, {"code": 100}, seed=7)
    plan = select_experts(arch, SelectOptions(keep="0.5", domains=("code",), budget="global"), profile)
    shares = []
    for lay in arch.layouts:
        s = profile.domains["code"].expert["prob_mass"][lay.index, :7]
        shares.append(sorted((s / s.sum()).tolist(), reverse=True))

    def value(alloc):
        return sum(sum(sh[:n]) for sh, n in zip(shares, alloc))

    best = max(value(a) for a in itertools.product(range(1, 8), repeat=3) if sum(a) == 9)
    ours = [n - 1 for n in plan.kept_counts()]
    assert sum(ours) == 9 and value(ours) == pytest.approx(best, abs=1e-12)


def test_global_budget_refused_where_counts_cannot_differ():
    arch = olmoe_arch()
    profile = random_profile(arch, {"code": 10})
    with pytest.raises(PlanError, match="olmoe config cannot express"):
        select_experts(arch, SelectOptions(keep="0.5", domains=("code",), budget="global"), profile)
    with pytest.raises(PlanError, match="needs --budget uniform"):
        select_experts(emo_arch(), SelectOptions(keep="0.5", method="greedy", budget="global"))


def test_keep_below_top_k_names_the_fix():
    arch = emo_arch(layers=1, experts=128, top_k=8)
    with pytest.raises(PlanError, match=r"keep 0.03 leaves 4 experts per layer, fewer than top-k 8; use --keep >= 0.0625"):
        keep_counts(Keep.parse("0.03"), list(arch.layouts))
    with pytest.raises(PlanError, match=r"use --keep >= 8"):
        keep_counts(Keep.parse("4"), list(arch.layouts))
    for bad in ("1.5", "abc", "0", "200"):
        with pytest.raises(PlanError):
            keep_counts(Keep.parse(bad), list(arch.layouts))
    assert keep_counts(Keep.parse("0.125"), list(arch.layouts)) == [16]
    assert keep_counts(Keep.parse("32"), list(arch.layouts)) == [32]


def test_random_is_seeded_and_needs_no_profile():
    arch = emo_arch(layers=2, experts=16)
    a = select_experts(arch, SelectOptions(keep="0.25", method="random", seed=1))
    b = select_experts(arch, SelectOptions(keep="0.25", method="random", seed=1))
    c = select_experts(arch, SelectOptions(keep="0.25", method="random", seed=2))
    assert a.experts_kept_per_layer == b.experts_kept_per_layer != c.experts_kept_per_layer
    assert a.seed == 1 and a.coverage == {}


def test_within_restricts_candidates():
    arch = emo_arch(layers=2, experts=16, shared=1)
    profile = random_profile(arch, {"code": 100}, seed=5)
    parent = Plan([[0, 1, 2, 3, 4, 5, 15], [8, 9, 10, 11, 12, 13, 15]])
    plan = select_experts(arch, SelectOptions(keep="4", domains=("code",), within=parent), profile)
    for ids, allowed in zip(plan.experts_kept_per_layer, parent.experts_kept_per_layer):
        assert set(ids) <= set(allowed) and len(ids) == 4
    assert plan.within is not None
    with pytest.raises(PlanError, match="keeps only 7 experts"):
        select_experts(arch, SelectOptions(keep="8", domains=("code",), within=parent), profile)


def test_profile_mismatches_are_refused():
    arch = emo_arch(layers=2, experts=16)
    profile = random_profile(emo_arch(layers=2, experts=8), {"code": 10})
    with pytest.raises(ProfileError, match="layout differs"):
        select_experts(arch, SelectOptions(keep="0.5", domains=("code",)), profile)
    profile = random_profile(arch, {"code": 10})
    with pytest.raises(ProfileError, match="domain 'law' is not in this profile"):
        select_experts(arch, SelectOptions(keep="0.5", domains=("law",)), profile)
    with pytest.raises(PlanError, match="pass --profile"):
        select_experts(arch, SelectOptions(keep="0.5", domains=("code",)))
