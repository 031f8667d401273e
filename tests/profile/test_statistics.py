"""Profile statistics equal the plain reference (reference.py) on every family, on both runners."""

from __future__ import annotations

import pytest
import torch

from emo_prune.io import Checkpoint
from emo_prune.profile import EXPERT_STATS, pool_size
from emo_prune.profile.runner import ProfileSettings, profile_model
from emo_prune.profile.store import POOL_BUDGETS
from tests.profile.reference import RefLayer, reference_stats

SEQ_LEN = 16  # short windows: several documents span 2-5 rows
BATCH = 3  # rows per batch: documents straddle batch boundaries

# statistic -> (rtol, atol). Counts are exact; masses are float64 sums of fp32 router probabilities;
# REAP multiplies by fp32 expert-output norms, whose matmul rounding differs from the float64 reference.
TOLERANCE = {
    "tokens": (0, 0),
    "pool_25": (0, 0),
    "pool_12": (0, 0),
    "prob_mass": (1e-6, 1e-6),
    "gate_weight": (1e-6, 1e-6),
    "entropy": (1e-6, 1e-6),
    "reap": (1e-5, 1e-6),
    "ean": (1e-5, 1e-6),
    # reap's rounding times 1 - cos(h, h + y): tiny models' expert outputs are small next to h, so values are
    # ~1e-9 and only a relative tolerance tests them
    "easy_ep": (1e-4, 1e-15),
}


def ref_layers(model_dir) -> tuple[dict[int, RefLayer], int, int]:
    ckpt = Checkpoint.open(model_dir)
    layouts = ckpt.architecture.layouts
    layers = {
        lay.index: RefLayer(
            E=lay.num_experts,
            k=lay.top_k,
            shared=lay.num_shared,
            norm=lay.norm_topk_prob,
            pool_sizes={s: pool_size(lay, f) for s, f in POOL_BUDGETS.items()},
        )
        for lay in layouts
        if not lay.is_dense
    }
    return layers, len(layouts), max(lay.num_experts for lay in layouts)


def assert_matches(profile, ref, counts, sets=None):
    assert set(profile.domains) == set(ref)
    for domain, by_layer in (sets or {}).items():  # fewer tokens than SAMPLE_SIZE: the sample is every token
        for layer, expected in by_layer.items():
            assert sorted(profile.topk_sample(domain).sets(layer)) == sorted(expected), (domain, layer)
    for domain, expected in ref.items():
        got = profile.domains[domain]
        assert [got.num_tokens, got.num_documents] == counts[domain]
        for stat in (*EXPERT_STATS, "entropy"):
            actual = got.entropy if stat == "entropy" else got.expert[stat]
            want = expected[stat][:, 0] if stat == "entropy" else expected[stat]
            rtol, atol = TOLERANCE[stat]
            torch.testing.assert_close(
                torch.from_numpy(actual), want, rtol=rtol, atol=atol, msg=lambda m: f"{domain}/{stat}: {m}"
            )


@pytest.mark.parametrize("family", ["emo", "olmoe", "mixtral", "qwen2_moe", "qwen3_moe"])
def test_statistics_equal_reference_both_runners(family, tiny_models, calib_docs):
    model_dir = tiny_models(family)
    layers, num_layers, max_e = ref_layers(model_dir)
    ref, counts, sets = reference_stats(model_dir, calib_docs, SEQ_LEN, layers, num_layers, max_e)
    settings = dict(seq_len=SEQ_LEN, batch_size=BATCH, max_tokens=None, device="cpu", dtype="float32")
    full = profile_model(model_dir, calib_docs, ProfileSettings(**settings, layerwise=False))
    assert_matches(full, ref, counts, sets)
    layerwise = profile_model(model_dir, calib_docs, ProfileSettings(**settings, layerwise=True))
    assert_matches(layerwise, ref, counts, sets)
    assert full.settings["layerwise"] is False and layerwise.settings["layerwise"] is True


def test_top_k_sample_is_the_same_tokens_on_both_runners(tiny_models, calib_docs):
    """A sample smaller than the calibration set: both runners keep the same tokens (same priorities, same sets)."""
    model_dir = tiny_models("qwen3_moe")
    settings = dict(seq_len=SEQ_LEN, batch_size=BATCH, max_tokens=None, device="cpu", dtype="float32", coverage_sample=20)
    full = profile_model(model_dir, calib_docs, ProfileSettings(**settings, layerwise=False))
    layerwise = profile_model(model_dir, calib_docs, ProfileSettings(**settings, layerwise=True))
    for domain in ("code", "math"):
        a, b = full.topk_sample(domain), layerwise.topk_sample(domain)
        assert a.ids.shape == (2, 20, 3) and (a.ids >= 0).all()  # more than 20 tokens: every row filled
        assert (a.priority == b.priority).all() and (a.ids == b.ids).all()
        assert (a.priority[0] == a.priority[1]).all()  # every layer samples the same tokens


def test_easy_ep_token_weight_is_the_same_in_chunks():
    """Batches longer than WEIGHT_CHUNK rows are weighted chunk by chunk: same values as one float64 pass."""
    from emo_prune.profile.collector import WEIGHT_CHUNK, easy_ep_token_weight

    g = torch.Generator().manual_seed(0)
    h = torch.randn(2 * WEIGHT_CHUNK + 7, 16, generator=g, dtype=torch.bfloat16)
    y = 0.01 * torch.randn(2 * WEIGHT_CHUNK + 7, 16, generator=g, dtype=torch.bfloat16)
    whole = 1.0 - torch.nn.functional.cosine_similarity(h.double(), h.double() + y.double(), dim=-1)
    torch.testing.assert_close(easy_ep_token_weight(h, y), whole, rtol=1e-12, atol=0)
