"""The expert cache keeps its byte budget; the coverage guard equals a reference computation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from emo_prune.extract import extract
from emo_prune.extract.coverage_meter import DEFAULT_WARN, SIDE_FILE, CoverageMeter, load_dropped_router
from emo_prune.io import Checkpoint
from emo_prune.models.weights import load_pretrained
from emo_prune.select import SelectOptions
from emo_prune.select.selector import select_experts
from emo_prune.serve import ExpertStore


@pytest.mark.parametrize("policy", ["lru", "lfu"])
def test_cache_respects_its_byte_budget(pool_models: dict[str, Path], policy: str) -> None:
    one = ExpertStore.open(pool_models["shared"], torch.float32).expert_nbytes(0)
    store = ExpertStore.open(pool_models["shared"], torch.float32, budget=int(2.5 * one), policy=policy)
    stream = [(0, 1), (0, 2), (0, 1), (1, 3), (0, 1), (2, 4), (0, 2), (1, 3), (0, 1), (2, 5)]
    for layer, expert in stream:
        weights = store.get(layer, expert)
        assert weights.nbytes == one
        assert store.cached_bytes <= store.budget_bytes and len(store.cache) <= 2
        assert store.cached_bytes == sum(w.nbytes for w in store.cache.values())
    assert store.stats.hits + store.stats.misses == len(stream)
    assert store.stats.bytes_read == store.stats.misses * one  # fp32 on disk: bytes read == bytes cached
    if policy == "lfu":
        assert (0, 1) in store.cache  # asked for 4 times: never the one evicted


def test_a_miss_makes_room_before_it_reads(pool_models: dict[str, Path]) -> None:
    """The expert being read never sits beside the one it replaces: cache + the read <= the budget."""
    one = ExpertStore.open(pool_models["shared"], torch.float32).expert_nbytes(0)
    store = ExpertStore.open(pool_models["shared"], torch.float32, budget=2 * one)
    read, at_read = store._read, []
    store._read = lambda layer, expert: (at_read.append(store.cached_bytes), read(layer, expert))[1]
    for expert in range(6):
        store.get(0, expert)
    assert at_read == [0, one, one, one, one, one] and store.cached_bytes == 2 * one


def test_cache_returns_the_checkpoint_weights(pool_models: dict[str, Path]) -> None:
    model = load_pretrained(pool_models["fused"], torch.float32)
    for variant in ("shared", "fused"):  # the same seed: same weights in both on-disk layouts
        store = ExpertStore.open(pool_models[variant], torch.float32, budget="1MB")
        w = store.get(1, 6)
        torch.testing.assert_close(w.gate_up, model.model.layers[1].mlp.experts.gate_up_proj[6], rtol=0, atol=0)
        torch.testing.assert_close(w.down, model.model.layers[1].mlp.experts.down_proj[6], rtol=0, atol=0)


def test_expert_larger_than_the_budget_is_not_cached(pool_models: dict[str, Path]) -> None:
    store = ExpertStore.open(pool_models["shared"], torch.float32, budget=10)
    store.get(0, 0)
    assert store.cached_bytes == 0 and not store.cache


def test_coverage_equals_reference(pool_models: dict[str, Path], tmp_path: Path) -> None:
    original = pool_models["shared"]
    arch = Checkpoint.open(original).architecture
    plan = select_experts(arch, SelectOptions(keep="0.5", method="random", seed=1))
    build = tmp_path / "build"
    extract(original, plan, build)
    assert (build / SIDE_FILE).exists()
    model = load_pretrained(build, torch.float32)
    dropped = load_dropped_router(build, list(model.model.layouts), model.config.hidden_size)
    meter = CoverageMeter(model, dropped)
    # reference: the ORIGINAL router's softmax over its routed block, on the build's own router inputs
    inputs: dict[int, torch.Tensor] = {}
    hooks = [
        layer.mlp.gate.register_forward_hook(lambda m, a, o, i=i: inputs.__setitem__(i, a[0].detach()))
        for i, layer in enumerate(model.model.layers)
    ]
    ids = [5, 17, 33, 2, 99, 250, 7, 61]
    coverage = meter.of_tokens(ids)
    full = load_pretrained(original, torch.float32)
    expected = {}
    for i, layer in enumerate(full.model.layers):
        routed = torch.softmax(inputs[i] @ layer.mlp.gate.weight[:-1].detach().T, dim=-1)  # [T, 15]: last id is shared
        kept = [e for e in plan.experts_kept_per_layer[i] if e != 15]
        expected[i] = float(routed[:, kept].sum(dim=-1).mean())
    for h in hooks:
        h.remove()
    assert coverage.per_layer == pytest.approx(expected, abs=1e-6)
    assert coverage.value == pytest.approx(sum(expected.values()) / len(expected), abs=1e-6)
    assert 0 < coverage.value < 1


def test_no_side_file_no_coverage(pool_models: dict[str, Path]) -> None:
    model = load_pretrained(pool_models["shared"], torch.float32)
    assert load_dropped_router(pool_models["shared"], list(model.model.layouts), model.config.hidden_size) is None


@pytest.fixture(scope="module")
def random_build(pool_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A half-size build of the shared-expert model from a random plan: 7 of 15 routed experts kept per layer."""
    plan = select_experts(Checkpoint.open(pool_models["shared"]).architecture, SelectOptions(keep="0.5", method="random", seed=1))
    return extract(pool_models["shared"], plan, tmp_path_factory.mktemp("cal") / "build").out_dir


def test_calibration_coverage_is_the_plans_mass_kept(random_build: Path) -> None:
    """A build whose plan came from a profile judges requests against the mass its plan kept."""
    import json

    manifest = json.loads((random_build / "emo_prune.json").read_text())
    manifest["coverage"] = {"code": [0.5, 0.3, 0.4], "math": [0.2, 0.2, 0.2]}  # per domain, per layer
    (random_build / "emo_prune.json").write_text(json.dumps(manifest))
    meter = CoverageMeter.of_build(load_pretrained(random_build, torch.float32), random_build)
    assert meter.expected == pytest.approx(0.3)  # the mean over domains and layers
    assert meter.warn_below(None) == pytest.approx(0.3 * DEFAULT_WARN) and meter.warn_below(0.5) == pytest.approx(0.15)


@pytest.mark.parametrize(
    "recorded", [None, {"code": ["0.5", 0.3, 0.4]}, {"code": [1.5]}, {"code": [0.0]}, ["0.3"], {"code": [True]}]
)
def test_without_a_valid_recorded_coverage_a_flat_router_is_assumed(random_build: Path, recorded: object) -> None:
    """No recorded coverage (a random plan), or one that is not numbers in (0, 1] (the manifest is untrusted):
    the kept share of each layer's routed experts, what a router that spreads evenly would give."""
    import json

    manifest = json.loads((random_build / "emo_prune.json").read_text())
    manifest["coverage"] = recorded
    (random_build / "emo_prune.json").write_text(json.dumps(manifest))
    meter = CoverageMeter.of_build(load_pretrained(random_build, torch.float32), random_build)
    assert meter.expected == pytest.approx(7 / 15)
