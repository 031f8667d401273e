"""eval of a model that does not fit: accelerate's disk offload, same logits and scores as the whole model."""

from __future__ import annotations

import pytest
import torch

from emo_prune.eval import EvalSettings, evaluate_model
from emo_prune.memory import ENV
from emo_prune.models.loading import LoadSettings, load_model


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_offloaded_model_gives_the_same_logits(tiny_zoo, monkeypatch, captured_notes):
    model_dir = tiny_zoo["emo"]
    settings = LoadSettings(impl="eager", dtype="float32", rows=2, seq_len=32)
    whole, _ = load_model(model_dir, settings.resolved())
    assert not hasattr(whole, "hf_device_map")
    monkeypatch.setenv(ENV, "601MB")  # the runtime and a few layers: the rest goes to the offload folder
    lines = captured_notes
    offloaded, _ = load_model(model_dir, settings.resolved())
    assert "disk" in set(offloaded.hf_device_map.values())
    assert len(lines) == 1 and lines[0].startswith("eval: the whole model needs about")
    ids = torch.randint(0, 500, (2, 11))
    assert torch.equal(_logits(offloaded, ids), _logits(whole, ids))


def test_eval_scores_equal_with_offload(tiny_zoo):
    base = dict(tasks=("emo_ppl_code",), limit=2, impl="eager", dtype="float32", batch_size=2, max_length=64)
    whole = evaluate_model(tiny_zoo["emo"], EvalSettings(**base, memory="whole"))
    offloaded = evaluate_model(tiny_zoo["emo"], EvalSettings(**base, memory="layerwise", max_memory="601MB"))  # mostly on disk
    got, want = offloaded.tasks["emo_ppl_code"].metrics, whole.tasks["emo_ppl_code"].metrics
    assert got["bits_per_byte"].value == pytest.approx(want["bits_per_byte"].value, rel=1e-6)
    assert offloaded.settings["memory"] == "layerwise"
