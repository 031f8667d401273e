"""`--method easy_ep` and `--method coverage`: against plain computations, known optima, old profiles."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from plan_helpers import emo_arch, olmoe_arch, random_profile
from safetensors.numpy import save

from emo_prune.errors import ProfileError
from emo_prune.pipeline.recipe import Selection
from emo_prune.profile.store import META_KEY, Profile
from emo_prune.profile.topk_sample import TopkSample
from emo_prune.select import SelectOptions, select_experts
from emo_prune.select.token_cover import cover


def with_sample(profile: Profile, domain: str, sets_by_layer: dict[int, list[tuple[int, ...]]]) -> Profile:
    """Give `domain` a top-k sample holding exactly `sets_by_layer` (priorities 0, 1, 2, ...)."""
    width = max(lay.top_k for lay in profile.layouts)
    size = max(len(s) for s in sets_by_layer.values())
    sample = TopkSample.empty(profile.num_layers, size, width)
    for layer, sets in sets_by_layer.items():
        for row, members in enumerate(sets):
            sample.ids[layer, row, : len(members)] = members
            sample.priority[layer, row] = row
    profile.domains[domain].sample = sample
    return profile


def test_easy_ep_ranks_by_the_per_token_easy_ep_sum():
    arch = emo_arch(layers=3, experts=16, shared=1)
    profile = random_profile(arch, {"code": 1000})
    plan = select_experts(arch, SelectOptions(keep="0.25", domains=("code",), method="easy_ep"), profile)
    d = profile.domains["code"]
    for lay, ids in zip(arch.layouts, plan.experts_kept_per_layer):
        score = d.expert["easy_ep"][lay.index].tolist()
        best = sorted(range(15), key=lambda e: (-score[e], e))[:3]  # 4 kept = 3 routed + shared 15
        assert ids == [*sorted(best), 15]


def test_existing_methods_are_not_moved_by_the_new_statistics():
    """mass / frequency / reap read their own statistics only: changing easy_ep, ean and the sample changes nothing."""
    arch = emo_arch(layers=2, experts=16, shared=1)
    profile = random_profile(arch, {"code": 500, "math": 300})
    before = {
        m: select_experts(arch, SelectOptions(keep="0.5", domains=("code", "math"), method=m), profile).experts_kept_per_layer
        for m in ("mass", "frequency", "reap", "random")
    }
    for d in profile.domains.values():
        d.expert["easy_ep"] = d.expert["easy_ep"][:, ::-1].copy()
        d.expert["ean"] = np.zeros_like(d.expert["ean"])
    with_sample(profile, "code", {0: [(0, 1)], 1: [(2, 3)]})
    for m, kept in before.items():
        assert (
            select_experts(arch, SelectOptions(keep="0.5", domains=("code", "math"), method=m), profile).experts_kept_per_layer
            == kept
        )


def optimum(sets, weights, routed, n):
    return max(cover(sets, weights, set(c)) for c in itertools.combinations(routed, n))


def test_coverage_finds_the_optimum_where_frequency_covers_nothing():
    # 11 tokens, top-2: {0,1} x3, {0,2} x3, {3,4} x5. Frequency keeps {0, 3} (0 is in 6 sets, 3 and 4 in 5,
    # tie to the lower id): no token has both of its experts kept. Keeping 2, the optimum is {3, 4} (5 tokens);
    # keeping 4 it is 8 tokens ({3, 4, 0, 1} or {3, 4, 0, 2}).
    arch = olmoe_arch(layers=1, experts=6, top_k=2)
    sets = [(0, 1)] * 3 + [(0, 2)] * 3 + [(3, 4)] * 5
    profile = random_profile(arch, {"code": 11})
    profile.domains["code"].expert["tokens"][0, :6] = [6, 3, 3, 5, 5, 0]
    with_sample(profile, "code", {0: sets})
    weights = np.full(len(sets), 1 / len(sets))
    frequency = select_experts(arch, SelectOptions(keep="2", domains=("code",), method="frequency"), profile)
    assert frequency.experts_kept_per_layer == [[0, 3]] and cover(sets, weights, {0, 3}) == 0
    for n, best in ((2, 5), (4, 8)):
        plan = select_experts(arch, SelectOptions(keep=str(n), domains=("code",), method="coverage"), profile)
        kept = set(plan.experts_kept_per_layer[0])
        assert cover(sets, weights, kept) == pytest.approx(optimum(sets, weights, range(6), n)) == pytest.approx(best / 11)
    small = select_experts(arch, SelectOptions(keep="2", domains=("code",), method="coverage"), profile)
    large = select_experts(arch, SelectOptions(keep="4", domains=("code",), method="coverage"), profile)
    assert small.experts_kept_per_layer == [[3, 4]] and set(small.experts_kept_per_layer[0]) <= set(
        large.experts_kept_per_layer[0]
    )


def test_coverage_ignores_fixed_experts_and_weighs_domains_by_tokens():
    # EMO, 8 experts, shared tail expert 7 in every top-3 set. Domain "big" (900 tokens) routes {0,1}, "small"
    # (100 tokens) routes {2,3} and {4,5}: keeping 3 (2 routed + the shared one) must cover big's tokens.
    arch = emo_arch(layers=1, experts=8, shared=1, top_k=3)
    profile = random_profile(arch, {"big": 900, "small": 100})
    with_sample(profile, "big", {0: [(0, 1, 7)] * 4})
    with_sample(profile, "small", {0: [(2, 3, 7)] * 30 + [(4, 5, 7)] * 30})
    plan = select_experts(arch, SelectOptions(keep="3", domains=("big", "small"), method="coverage"), profile)
    assert plan.experts_kept_per_layer == [[0, 1, 7]]
    assert plan.combine is None  # --combine does not apply: one greedy order over the weighted tokens
    # alone, small's two sets tie; the lower ids win
    alone = select_experts(arch, SelectOptions(keep="3", domains=("small",), method="coverage"), profile)
    assert alone.experts_kept_per_layer == [[2, 3, 7]]


def test_coverage_respects_within():
    arch = olmoe_arch(layers=1, experts=6, top_k=2)
    profile = with_sample(random_profile(arch, {"code": 11}), "code", {0: [(3, 4)] * 5 + [(0, 1)] * 3 + [(1, 2)] * 2})
    parent = select_experts(arch, SelectOptions(keep="4", domains=("code",), method="mass"), profile)
    plan = select_experts(arch, SelectOptions(keep="2", domains=("code",), method="coverage", within=parent), profile)
    inside = set(parent.experts_kept_per_layer[0])
    assert set(plan.experts_kept_per_layer[0]) <= inside


def test_sample_merge_keeps_the_lowest_priorities():
    a = TopkSample.empty(1, 3, 2)
    b = TopkSample.empty(1, 3, 2)
    a.ids[0, :2], a.priority[0, :2] = [[0, 1], [2, 3]], [0.5, 0.1]
    b.ids[0, :3], b.priority[0, :3] = [[4, 5], [6, 7], [0, 2]], [0.3, 0.9, 0.2]
    merged = a.merge(b)
    assert merged.priority[0].tolist() == [0.1, 0.2, 0.3]
    assert merged.sets(0) == [(2, 3), (0, 2), (4, 5)]


def format_1_file(profile: Profile, path):
    """A profile file as emo-prune wrote it before format 2: no easy_ep, no ean, no top-k sample."""
    tensors = {k: v for k, v in profile._tensors().items() if not k.endswith(("/easy_ep", "/ean", "/topk_ids", "/topk_priority"))}
    meta = profile._metadata() | {"format": 1}
    path.write_bytes(save(tensors, metadata={META_KEY: json.dumps(meta)}))
    return path


def test_format_1_profiles_still_select_with_the_old_methods(tmp_path):
    arch = emo_arch(layers=2, experts=16, shared=1)
    profile = random_profile(arch, {"code": 400})
    old = Profile.load(format_1_file(profile, tmp_path / "old.safetensors"))
    plan = select_experts(arch, SelectOptions(keep="0.25", domains=("code",), method="reap"), old)
    assert (
        plan.experts_kept_per_layer
        == select_experts(arch, SelectOptions(keep="0.25", domains=("code",), method="reap"), profile).experts_kept_per_layer
    )
    for method, missing in (("easy_ep", "no statistic 'easy_ep'"), ("coverage", "no top-k sample")):
        with pytest.raises(ProfileError, match=f"{missing} for domain 'code'.*run `emo-prune profile` again"):
            select_experts(arch, SelectOptions(keep="0.25", domains=("code",), method=method), old)


def test_cli_refuses_easy_ep_on_a_format_1_profile_in_one_line(cli, tiny, tmp_path):
    from emo_prune.io import Checkpoint, model_identity

    model = tiny("emo", layers=2, experts=8, top_k=2, shared=1)
    arch = Checkpoint.open(model).architecture
    profile = random_profile(arch, {"code": 100}, model=model_identity(Checkpoint.open(model)))
    old = format_1_file(profile, tmp_path / "old.safetensors")
    result = cli("select", model, "--profile", old, "--method", "easy_ep", "--keep", "0.5", "--out", tmp_path / "plan.json")
    assert result.exit_code == 1 and "no statistic 'easy_ep'" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "plan.json").exists()
    ok = cli("select", model, "--profile", old, "--method", "mass", "--keep", "0.5", "--out", tmp_path / "plan.json")
    assert ok.exit_code == 0, ok.output


@pytest.mark.parametrize("method", ["easy_ep", "coverage"])
def test_recipes_accept_the_new_methods(method):
    assert Selection(method=method).method == method


def test_merge_keeps_the_bottom_n_sample_and_drops_what_a_part_lacks(tmp_path):
    arch = olmoe_arch(layers=1, experts=6, top_k=2)
    a = with_sample(random_profile(arch, {"code": 10}, seed=1), "code", {0: [(0, 1), (2, 3)]})
    b = with_sample(random_profile(arch, {"code": 10}, seed=2), "code", {0: [(4, 5), (1, 2)]})
    b.domains["code"].sample.priority[0] += 0.5  # b's tokens: 0.5, 1.5; a's: 0, 1
    merged = Profile.merge([a, b])
    assert merged.topk_sample("code").sets(0) == [(0, 1), (4, 5)]  # the 2 lowest priorities of the 4 tokens
    assert "easy_ep" in merged.domains["code"].expert
    old = Profile.load(format_1_file(b, tmp_path / "old.safetensors"))
    mixed = Profile.merge([a, old])
    assert "easy_ep" not in mixed.domains["code"].expert and mixed.domains["code"].sample is None
    assert (
        mixed.domains["code"].expert["reap"][0].tolist()
        == (a.domains["code"].expert["reap"][0] + b.domains["code"].expert["reap"][0]).tolist()
    )
    with pytest.raises(ProfileError, match="no statistic 'easy_ep'"):
        mixed.stat("code", "easy_ep", 0)
