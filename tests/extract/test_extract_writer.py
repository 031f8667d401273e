"""The sharded atomic writer: safetensors that safetensors reads back, alignment, caps, order, atomic folders."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from emo_prune.errors import OutputError
from emo_prune.io.atomic import AtomicFolder
from emo_prune.io.shards import ShardedWriter, TensorSpec, plan_shards
from emo_prune.io.sizes import parse_size


def spec_of(name: str, tensor: torch.Tensor) -> TensorSpec:
    tags = {torch.float32: "F32", torch.bfloat16: "BF16", torch.int64: "I64", torch.uint8: "U8"}
    return TensorSpec(name, tags[tensor.dtype], tuple(tensor.shape))


def test_round_trip_mixed_dtypes_aligned_and_capped(tmp_path):
    g = torch.Generator().manual_seed(0)
    tensors = {
        "a.bf16": torch.randn(3, 5, generator=g).to(torch.bfloat16),  # odd byte count before wider types
        "b.u8": torch.randint(0, 255, (7,), generator=g, dtype=torch.uint8),
        "c.f32": torch.randn(11, generator=g),
        "d.i64": torch.arange(5),
        "e.f32": torch.randn(2, 3, generator=g),
        "f.empty": torch.zeros(0, 4),
    }
    writer = ShardedWriter(tmp_path, [spec_of(n, t) for n, t in tensors.items()], max_shard_size=64)
    for name, t in tensors.items():
        writer.write_tensor(name, t)
    index = writer.finish()
    files = sorted(set(index["weight_map"].values()))
    assert len(files) > 1 and files == [f"model-{i + 1:05d}-of-{len(files):05d}.safetensors" for i in range(len(files))]
    assert not list(tmp_path.glob("*.partial"))
    loaded = {}
    for f in files:
        loaded.update(load_file(str(tmp_path / f)))
        with safe_open(str(tmp_path / f), "pt") as handle:
            assert handle.metadata() == {"format": "pt"}
        header_len = int.from_bytes((tmp_path / f).read_bytes()[:8], "little")
        header = json.loads((tmp_path / f).read_bytes()[8 : 8 + header_len])
        for name, entry in header.items():
            if name != "__metadata__":
                item = {"BF16": 2, "U8": 1, "F32": 4, "I64": 8}[entry["dtype"]]
                assert (8 + header_len + entry["data_offsets"][0]) % item == 0  # aligned to the element size
    assert loaded.keys() == tensors.keys()
    assert all(torch.equal(loaded[n], t) for n, t in tensors.items())
    assert index["metadata"]["total_size"] == sum(t.numel() * t.element_size() for t in tensors.values())


def test_order_shape_and_count_are_enforced(tmp_path):
    a, b = torch.zeros(2), torch.ones(3)
    writer = ShardedWriter(tmp_path, [spec_of("a", a), spec_of("b", b)], max_shard_size=10**6)
    with pytest.raises(OutputError, match="out of order"):
        writer.write_tensor("b", b)
    with pytest.raises(OutputError, match="the plan says"):
        writer.write_tensor("a", torch.zeros(3))
    writer.write_tensor("a", a)
    with pytest.raises(OutputError, match="finished after 1 of 2"):
        writer.finish()
    writer.abort()
    with pytest.raises(OutputError, match="share a name"):
        ShardedWriter(tmp_path, [spec_of("a", a), spec_of("a", a)], 100)


def test_plan_shards_and_sizes():
    specs = [TensorSpec(f"t{i}", "U8", (n,)) for i, n in enumerate([40, 40, 100, 10, 10])]
    assert [[s.name for s in shard] for shard in plan_shards(specs, 80)] == [["t0", "t1"], ["t2"], ["t3", "t4"]]
    assert parse_size("5GB") == 5 * 10**9 and parse_size("512MiB") == 512 * 2**20 and parse_size(1000) == 1000
    assert parse_size("1.5 kB") == 1500
    for bad in ("five", "-1", "0"):
        with pytest.raises(OutputError):
            parse_size(bad)


def test_atomic_folder_commits_or_vanishes(tmp_path):
    target = tmp_path / "out"
    with AtomicFolder(target) as tmp:
        (tmp / "x").write_text("1")
        assert not target.exists()
    assert (target / "x").read_text() == "1" and not (target / ".emo-prune-partial").exists()
    with pytest.raises(RuntimeError):
        with AtomicFolder(target, overwrite=True) as tmp:
            (tmp / "x").write_text("2")
            raise RuntimeError("boom")
    assert (target / "x").read_text() == "1"  # the old output survives a failed replacement
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with AtomicFolder(target, overwrite=True) as tmp:
        (tmp / "y").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == [".emo-prune-owner.json", "y"] and sorted(
        p.name for p in tmp_path.iterdir()
    ) == ["out"]
