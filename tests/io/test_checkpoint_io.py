"""Opening checkpoints: every bad input is a clear CheckpointError naming the file, nothing is read twice."""

from __future__ import annotations

import json
import shutil
import struct

import pytest

from emo_prune.errors import CheckpointError, UnknownArchitectureError
from emo_prune.io import Checkpoint, TensorReader, build_inventory, model_identity, read_header
from emo_prune.testing import write_tiny_model


@pytest.fixture
def sharded(tmp_path):
    return write_tiny_model(tmp_path / "m", "olmoe", max_shard_size="60KB")


def test_headers_match_safetensors(sharded):
    checkpoint = Checkpoint.open(sharded)
    assert len(checkpoint.shards) > 2
    with TensorReader(checkpoint) as reader:
        for info in list(checkpoint.tensors())[:10]:
            tensor = reader.get(info.name)
            assert tuple(tensor.shape) == info.shape and tensor.numel() * tensor.element_size() == info.nbytes


def test_missing_folder_and_config(tmp_path, sharded):
    with pytest.raises(CheckpointError, match="model folder not found"):
        Checkpoint.open(tmp_path / "nope")
    (sharded / "config.json").unlink()
    with pytest.raises(CheckpointError, match="has no config.json"):
        Checkpoint.open(sharded)


def test_config_not_json(sharded):
    (sharded / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        Checkpoint.open(sharded)


def test_no_weights_mentions_bin_files(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="convert them to safetensors"):
        Checkpoint.open(tmp_path)


def test_missing_shard_named_in_index(sharded):
    shard = sorted(sharded.glob("model-*.safetensors"))[1]
    shard.unlink()
    with pytest.raises(CheckpointError, match=f"shard {shard.name} named in .* is missing"):
        Checkpoint.open(sharded)


def test_truncated_shard(sharded):
    shard = sorted(sharded.glob("model-*.safetensors"))[0]
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) - 100])
    with pytest.raises(CheckpointError, match=f"{shard.name} is truncated"):
        Checkpoint.open(sharded)


def test_shard_cut_inside_header(sharded):
    shard = sorted(sharded.glob("model-*.safetensors"))[0]
    shard.write_bytes(shard.read_bytes()[:20])
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        Checkpoint.open(sharded)


def test_garbage_header(sharded):
    shard = sorted(sharded.glob("model-*.safetensors"))[0]
    shard.write_bytes(struct.pack("<Q", 10) + b"not json!!" + b"\0" * 64)
    with pytest.raises(CheckpointError, match="corrupt safetensors header"):
        read_header(shard)


def test_index_maps_tensor_to_wrong_shard(sharded):
    index_path = sharded / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    name = next(iter(index["weight_map"]))
    others = sorted(set(index["weight_map"].values()) - {index["weight_map"][name]})
    index["weight_map"][name] = others[0]
    index_path.write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="does not hold it"):
        Checkpoint.open(sharded)


def test_unknown_model_type(sharded):
    config = json.loads((sharded / "config.json").read_text())
    config["model_type"] = "mamba"
    (sharded / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnknownArchitectureError, match="'mamba' is not a supported MoE family"):
        _ = Checkpoint.open(sharded).architecture


def test_config_disagreeing_with_shards(tmp_path):
    path = write_tiny_model(tmp_path / "m", "emo", experts=8)
    config = json.loads((path / "config.json").read_text())
    config["num_experts"] = 10
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="has 8 rows but the config gives layer 0 10 experts"):
        build_inventory(Checkpoint.open(path))


def test_identity_is_stable_and_tracks_changes(sharded, tmp_path, monkeypatch):
    monkeypatch.setenv("EMO_PRUNE_CACHE", str(tmp_path / "cache"))
    first = model_identity(Checkpoint.open(sharded))
    copy = shutil.copytree(sharded, tmp_path / "copy")
    assert model_identity(Checkpoint.open(copy))["digest"] == first["digest"]
    assert (tmp_path / "cache" / "sha256.json").exists()
    write_tiny_model(tmp_path / "other", "olmoe", seed=9, max_shard_size="60KB")
    assert model_identity(Checkpoint.open(tmp_path / "other"))["digest"] != first["digest"]
