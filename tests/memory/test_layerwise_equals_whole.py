"""verify and greedy selection give the same answers layer by layer as with the whole model in memory."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from emo_prune.extract import extract
from emo_prune.io import Checkpoint
from emo_prune.memory import MemoryOptions
from emo_prune.select import GreedySettings, SelectOptions, select_experts
from emo_prune.select.greedy import run_greedy
from emo_prune.verify import verify
from tests.select.test_select_greedy import DOCS

WHOLE, LAYERWISE = MemoryOptions("whole"), MemoryOptions("layerwise")


# each case covers a layout the layer stream must handle
MODELS = {
    # EMO with a shared expert, a dense layer and per-layer counts, fused on disk
    "emo-dense": dict(family="emo", layers=3, experts_per_layer=[8, 0, 6], storage="fused"),
    # EMO, per-expert keys spread over many shards (AI2's layout)
    "emo-sharded": dict(family="emo", layers=3, max_shard_size="20KB"),
    # OLMoE: plain top-k softmax; Qwen2-MoE: separate shared expert and an mlp_only layer
    "olmoe": dict(family="olmoe", layers=2),
    "qwen2_moe": dict(family="qwen2_moe", layers=3, dense_layers=[1]),
}


def _model(tiny, tmp_path, case: str):
    sizes = dict(MODELS[case])
    family, shard = sizes.pop("family"), sizes.pop("max_shard_size", None)
    if shard is None:
        return tiny(family, **sizes)
    from emo_prune.testing import write_tiny_model

    return write_tiny_model(tmp_path / case, family, max_shard_size=shard, **sizes)


@pytest.mark.parametrize("case", sorted(MODELS))
def test_verify_layerwise_equals_whole(case, tiny, tmp_path):
    model = _model(tiny, tmp_path, case)
    arch = Checkpoint.open(model).architecture
    build = tmp_path / "build"
    extract(model, select_experts(arch, SelectOptions(keep="0.5", method="random")), build)
    whole = verify(model, build, num_prompts=3, memory=WHOLE)
    layerwise = verify(model, build, num_prompts=3, memory=LAYERWISE)
    assert (whole.path, layerwise.path) == ("whole", "layerwise")
    assert whole.passed and layerwise.passed
    assert layerwise.per_prompt == pytest.approx(whole.per_prompt, abs=1e-6)
    assert len(layerwise.per_layer) == arch.num_layers and max(layerwise.per_layer) <= 1e-5


def test_verify_layerwise_fails_a_wrong_build_as_whole_does_and_names_the_layer(tiny, tmp_path):
    model = tiny("emo", layers=3)
    arch = Checkpoint.open(model).architecture
    build = tmp_path / "build"
    extract(model, select_experts(arch, SelectOptions(keep="0.5", method="random")), build)
    name = "model.layers.1.mlp.experts.0.down_proj.weight"
    # the shard that holds it (the build folder also has the coverage side file, also *.safetensors)
    shard = next(f for f in sorted(build.glob("*.safetensors")) if name in load_file(f))
    tensors = load_file(shard)
    tensors[name] = tensors[name] * 1.5  # a kept expert of layer 1 no longer equals the original's
    save_file(tensors, shard, metadata={"format": "pt"})
    whole = verify(model, build, num_prompts=3, memory=WHOLE)
    layerwise = verify(model, build, num_prompts=3, memory=LAYERWISE)
    assert not whole.passed and not layerwise.passed
    assert layerwise.max_abs_diff == pytest.approx(whole.max_abs_diff, rel=1e-5)
    assert layerwise.per_layer[0] <= 1e-6 and layerwise.per_layer[1] > 1e-3  # the first layer that differs
    assert layerwise.per_layer[2] <= 1e-5  # on the same inputs, layer 2 of the build is still right


@pytest.mark.parametrize("case", sorted(MODELS))
def test_greedy_layerwise_equals_whole(case, tiny, tmp_path):
    model = _model(tiny, tmp_path, case)
    arch = Checkpoint.open(model).architecture
    scores: dict[str, dict[int, dict[str, torch.Tensor]]] = {"whole": {}, "layerwise": {}}

    def chooser(path):
        def choose(layer, by_domain, _weights):  # top half of the routed candidates by summed mean probability
            scores[path][layer] = by_domain
            lay = arch.layouts[layer]
            total = sum(by_domain.values())
            ranked = sorted(lay.routed_ids, key=lambda e: (-float(total[e]), e))
            return sorted(ranked[: len(ranked) // 2]) + list(lay.fixed_ids)

        return choose

    settings = lambda memory: GreedySettings(batch_size=2, seq_len=32, memory=memory)  # noqa: E731
    whole = run_greedy(model, DOCS, chooser("whole"), settings(WHOLE))
    layerwise = run_greedy(model, DOCS, chooser("layerwise"), settings(LAYERWISE))
    assert layerwise == whole
    assert scores["whole"].keys() == scores["layerwise"].keys() == {lay.index for lay in arch.moe_layers}
    for layer, by_domain in scores["whole"].items():
        for domain, mean in by_domain.items():
            torch.testing.assert_close(scores["layerwise"][layer][domain], mean, rtol=0, atol=1e-12)


def test_select_greedy_under_a_budget_goes_layerwise(tiny, monkeypatch, captured_notes):
    model = tiny("emo", layers=3)
    arch = Checkpoint.open(model).architecture
    options = SelectOptions(keep="0.5", method="greedy", domains=("code", "math"), greedy=GreedySettings(batch_size=2))
    whole = select_experts(arch, options, model_dir=model, documents=DOCS)
    assert captured_notes == []  # the whole model fits: nothing to say
    monkeypatch.setenv("EMO_PRUNE_MAX_MEMORY", "601MB")  # the runtime plus this tiny model's largest layer
    auto = select_experts(arch, options, model_dir=model, documents=DOCS)
    lines = captured_notes
    assert auto.experts_kept_per_layer == whole.experts_kept_per_layer
    assert len(lines) == 1 and lines[0].startswith("greedy selection: the whole model needs about")
