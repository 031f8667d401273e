"""The memory plan: estimates from headers, the automatic choice of path under a budget given by the test."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from emo_prune.errors import ConfigError, InsufficientMemoryError
from emo_prune.io import Checkpoint
from emo_prune.memory import ENV, Budget, MemoryOptions, Workload, available, choose_path, estimates
from emo_prune.memory.estimate import RUNTIME_BYTES
from emo_prune.profile.runner import ProfileSettings, profile_model

WORK = Workload(rows=2, seq_len=16, kept_tokens=64)


@pytest.fixture
def deep(tiny):
    """8 layers whose experts dominate the weights: layer by layer needs far less than the whole."""
    return tiny("emo", layers=8, hidden=64, experts=16, expert_width=64)


def test_estimates_count_weights_at_the_compute_dtype(deep):
    checkpoint = Checkpoint.open(deep)
    fp32 = estimates([checkpoint], torch.float32, WORK)
    bf16 = estimates([checkpoint], torch.bfloat16, WORK)
    assert fp32["whole"].weights == checkpoint.total_bytes  # stored as float32
    assert bf16["whole"].weights * 2 == fp32["whole"].weights
    layer0 = sum(t.nbytes for t in checkpoint.tensors() if t.name.startswith("model.layers.0."))
    embed = checkpoint.tensor("model.embed_tokens.weight").nbytes
    assert fp32["layerwise"].weights == max(layer0, embed)
    assert fp32["layerwise"].total < fp32["whole"].total
    assert fp32["whole"].runtime == RUNTIME_BYTES


def test_auto_picks_whole_then_layerwise_then_refuses(deep, captured_notes):
    found = estimates([Checkpoint.open(deep)], torch.float32, WORK)
    whole, layerwise = found["whole"].total, found["layerwise"].total
    lines = captured_notes
    assert choose_path("profile", found, Budget(whole, "test")).path == "whole"
    assert lines == []  # nothing to say when the whole model fits
    choice = choose_path("profile", found, Budget(whole - 1, "test"))
    assert choice.path == "layerwise" and len(lines) == 1 and "layer by layer" in lines[0]
    with pytest.raises(
        InsufficientMemoryError,
        match=r"profile does not fit in \d+ MB \(test\): the whole model needs about \d+ MB \(weights .* layer by layer about",
    ):
        choose_path("profile", found, Budget(layerwise - 1, "test"))


def test_lean_commands_take_the_smaller_path_and_speak_only_when_the_whole_model_does_not_fit(deep, captured_notes):
    found = estimates([Checkpoint.open(deep)], torch.float32, WORK)
    whole, layerwise = found["whole"].total, found["layerwise"].total
    assert layerwise < whole
    lines = captured_notes
    assert choose_path("profile", found, Budget(whole, "test"), lean=True).path == "layerwise"
    assert lines == []  # the usual path: nothing to say
    assert choose_path("profile", found, Budget(whole - 1, "test"), lean=True).path == "layerwise"
    assert len(lines) == 1 and "layer by layer" in lines[0]
    heavy = {
        "whole": found["whole"],
        "layerwise": replace(found["layerwise"], activations=whole),
    }  # activations outweigh the model
    assert choose_path("profile", heavy, Budget(1 << 40, "test"), lean=True).path == "whole"
    assert choose_path("profile", found, Budget(1 << 40, "test"), "whole", lean=True).path == "whole"  # forced


def test_forced_paths_run_as_asked_and_say_when_over(deep, captured_notes):
    found = estimates([Checkpoint.open(deep)], torch.float32, WORK)
    lines = captured_notes
    assert choose_path("verify", found, Budget(1, "test"), "whole").path == "whole"
    assert choose_path("verify", found, Budget(1 << 40, "test"), "layerwise").path == "layerwise"
    assert len(lines) == 1 and "--whole needs about" in lines[0]
    with pytest.raises(ConfigError, match="unknown memory path"):
        choose_path("verify", found, Budget(1, "test"), "sideways")


def test_budget_sources(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert available("cpu").bytes > 0
    monkeypatch.setenv(ENV, "3GB")
    assert available("cpu") == Budget(3_000_000_000, ENV)
    assert available("cpu", "512MiB") == Budget(512 * 2**20, "--max-memory")  # the option wins
    with pytest.raises(ConfigError, match="not a size"):
        available("cpu", "lots")


def test_profile_switches_to_layerwise_under_the_env_budget(deep, calib_docs, monkeypatch, captured_notes):
    checkpoint = Checkpoint.open(deep)
    settings = dict(seq_len=16, batch_size=2, max_tokens=200, device="cpu", dtype="float32")
    found = estimates([checkpoint], torch.float32, Workload(rows=2, seq_len=16, kept_tokens=0))
    monkeypatch.setenv(ENV, str(found["whole"].total - 1))  # the whole model no longer fits
    lines = captured_notes
    auto = profile_model(deep, calib_docs, ProfileSettings(**settings))
    assert auto.settings["layerwise"] is True and len(lines) == 1
    forced = profile_model(deep, calib_docs, ProfileSettings(**settings, layerwise=False))
    assert forced.settings["layerwise"] is False and "--whole needs" in lines[-1]
    monkeypatch.setenv(ENV, "1MB")
    with pytest.raises(InsufficientMemoryError, match="profile does not fit"):
        profile_model(deep, calib_docs, ProfileSettings(**settings))
    assert ProfileSettings(**settings, max_memory="1TB").memory == MemoryOptions("auto", "1TB")
