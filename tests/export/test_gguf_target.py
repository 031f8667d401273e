"""`--target gguf`: select / extract refuse plans a GGUF file cannot carry, before anything is written."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def model(export_zoo):
    return export_zoo["emo"]  # 8 experts (1 shared), top-2


def test_extract_refuses_a_ragged_plan(cli, model, tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"experts_kept_per_layer": [[0, 1, 2, 7], [0, 1, 7]]}))
    result = cli("extract", model, "--plan", plan, "--target", "gguf", "--out", tmp_path / "build")
    assert result.exit_code == 1
    assert "per-layer expert counts [4, 3]: GGUF needs one count; select with --budget uniform" in result.output
    assert not (tmp_path / "build").exists()


def test_uniform_plan_passes_and_unknown_target_is_refused(cli, model, tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"experts_kept_per_layer": [[0, 1, 2, 7], [3, 4, 5, 7]]}))
    ok = cli("extract", model, "--plan", plan, "--target", "gguf", "--out", tmp_path / "build")
    assert ok.exit_code == 0, ok.output
    bad = cli("extract", model, "--plan", plan, "--target", "onnx", "--out", tmp_path / "other")
    assert bad.exit_code == 1 and "--target 'onnx' is not one of gguf" in bad.output


def test_select_with_target(cli, model, tmp_path):
    import torch

    from emo_prune.io import Checkpoint, model_identity
    from emo_prune.profile.store import EXPERT_STATS, Profile

    checkpoint = Checkpoint.open(model)
    profile = Profile(layouts=list(checkpoint.architecture.layouts), model=model_identity(checkpoint))
    stats = profile.domain("code")
    stats.num_tokens, stats.num_documents = 400, 8
    g = torch.Generator().manual_seed(0)
    for s in EXPERT_STATS:
        stats.expert[s] = (torch.rand(stats.expert[s].shape, generator=g, dtype=torch.float64) * 400).numpy()
    profile = profile.save(tmp_path / "p.safetensors")
    plan = tmp_path / "plan.json"
    result = cli("select", model, "--profile", profile, "--domain", "code", "--keep", "0.5", "--target", "gguf", "--out", plan)
    assert result.exit_code == 0, result.output
    assert plan.is_file()


def test_run_refuses_an_unknown_target_before_anything_runs(cli, model, tmp_path):
    result = cli("run", "quickstart", "--target", "onnx", "--out", tmp_path / "run")
    assert result.exit_code == 1 and "--target 'onnx' is not one of gguf" in result.output
    assert not (tmp_path / "run").exists()
