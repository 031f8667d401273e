"""Model names in recipes: folders, builtin:NAME (materialized once, atomically), Hub ids offline."""

from __future__ import annotations

import json

import pytest

from emo_prune.errors import CheckpointError
from emo_prune.io import Checkpoint
from emo_prune.models.builtin import BUILTIN_MODELS, TINY_EMO, resolve_model


def test_builtin_tiny_emo_is_made_once(tmp_path, monkeypatch):
    monkeypatch.setenv("EMO_PRUNE_CACHE", str(tmp_path))
    path = resolve_model("builtin:tiny-emo")
    assert path.parent == tmp_path / "models" and sorted(p.name for p in path.parent.iterdir()) == [path.name]
    config = json.loads((path / "config.json").read_text())
    assert (config["num_experts"], config["num_shared_experts"], config["num_experts_per_tok"]) == (32, 1, 4)
    assert config["num_hidden_layers"] == TINY_EMO["layers"] and Checkpoint.open(path).architecture.family.name == "emo"
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert resolve_model("builtin:tiny-emo") == path and (path / "model.safetensors").stat().st_mtime_ns == stamp


def test_failed_build_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("EMO_PRUNE_CACHE", str(tmp_path))

    def broken(folder):
        (folder / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    from dataclasses import replace

    monkeypatch.setitem(BUILTIN_MODELS, "broken", replace(BUILTIN_MODELS["tiny-emo"], name="broken", build=broken))
    with pytest.raises(RuntimeError):
        resolve_model("builtin:broken")
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(CheckpointError, match=r"unknown built-in model 'builtin:nope'; built-in: .*builtin:tiny-emo"):
        resolve_model("builtin:nope")
    with pytest.raises(CheckpointError, match="not a model folder"):
        resolve_model(tmp_path)
    with pytest.raises(CheckpointError, match="model folder not found"):
        resolve_model(tmp_path / "missing")
    # conftest sets HF_HUB_OFFLINE=1: a Hub id that is not cached is a clear error, not a download
    with pytest.raises(CheckpointError, match="'allenai/Emo_1b14b_1T' is neither a local folder nor in the Hugging Face cache"):
        resolve_model("allenai/Emo_1b14b_1T")
