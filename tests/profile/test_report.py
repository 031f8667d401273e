"""Report data: subsets by mass, routed-mass coverage, top experts, Jaccard overlap, heatmap matrix."""

from __future__ import annotations

import math

import pytest
import torch

from emo_prune.arch import LayerLayout
from emo_prune.profile import Profile
from emo_prune.profile.plot import heatmap_matrix
from emo_prune.profile.report import build_report, coverage, jaccard, subset, top_experts

# layer 0: 8 experts, the last shared; layer 1: dense; layer 2: 4 plain experts (narrower than E_max)
LAYOUTS = [
    LayerLayout(index=0, num_experts=8, num_shared=1, top_k=2),
    LayerLayout(index=1, num_experts=0),
    LayerLayout(index=2, num_experts=4, top_k=1),
]
MASS = {
    "code": [[8, 7, 6, 5, 4, 3, 2, 100], [0] * 8, [1, 9, 0, 0] + [0] * 4],
    "math": [[1, 2, 3, 4, 5, 6, 7, 100], [0] * 8, [0, 9, 1, 0] + [0] * 4],
}


@pytest.fixture
def profile():
    p = Profile(layouts=LAYOUTS, model={"path": "m", "digest": "d"})
    for name, mass in MASS.items():
        stats = p.domain(name)
        stats.expert["prob_mass"] += torch.tensor(mass, dtype=torch.float64).numpy()
        stats.num_tokens = 100
    return p


def test_subsets_coverage_and_top(profile):
    # 25% of 8 = 2 kept incl. the shared one -> 1 routed; of 4 -> max(top_k 1, 1) = 1 routed
    assert subset(profile, "code", 0.25) == [[0, 7], None, [1]]
    assert subset(profile, "math", 0.25) == [[6, 7], None, [1]]
    cov = coverage(profile, "code", [[0, 1, 7], None, [0]])
    assert cov[1] is None
    assert cov[0] == pytest.approx(15 / 35) and cov[2] == pytest.approx(1 / 10)  # shared mass excluded
    assert top_experts(profile, "code", 0, 2) == [(7, 1.0), (0, 0.08)]
    with pytest.raises(ValueError):
        coverage(profile, "code", [[0]])


def test_report_and_overlap(profile):
    report = build_report(profile, top=3)
    code = report["domains"]["code"]
    assert code["coverage"]["0.25"]["per_layer"] == [pytest.approx(8 / 35), None, pytest.approx(0.9)]
    assert code["coverage"]["0.25"]["min"] == pytest.approx(8 / 35)
    assert code["top_experts"][1] is None and len(code["top_experts"][2]) == 3
    (pair,) = report["overlap"]
    # routed picks only: layer 0 {0} vs {6} -> 0; layer 2 {1} vs {1} -> 1
    assert pair["domains"] == ["code", "math"] and pair["jaccard"] == [0.0, None, 1.0] and pair["mean"] == 0.5
    assert jaccard([], []) == 1.0 and jaccard([1, 2], [2, 3]) == pytest.approx(1 / 3)


def test_heatmap_matrix_marks_missing_experts(profile):
    m = heatmap_matrix(profile, "code", routed_only=False)
    assert m.shape == (3, 8)
    assert m[0, 7] == 1.0 and all(math.isnan(v) for v in m[1].tolist()) and math.isnan(m[2, 4])


def test_heatmap_leaves_out_the_shared_expert(profile):
    """The shared expert's ~1.0 would flatten the routed experts' colour scale."""
    m = heatmap_matrix(profile, "code")
    assert math.isnan(m[0, 7]) and not math.isnan(m[0, 0])
