"""`emo_prune.io.ranges`: a tensor's bytes, or some of its dim-0 rows, located from the header and read
with positional reads equal what safetensors itself reads."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from emo_prune.errors import CheckpointError
from emo_prune.io import Checkpoint, TensorReader
from emo_prune.io.ranges import read_tensor, tensor_bytes
from emo_prune.testing import write_tiny_model

DTYPES = [torch.float32, torch.bfloat16, torch.float16]


@pytest.fixture
def folder(tmp_path):
    """One shard: "w.{dtype}" [6, 3, 4] at each dtype, then a scalar "s" (F32 [])."""
    torch.manual_seed(0)
    tensors = {f"w.{str(d).removeprefix('torch.')}": torch.randn(6, 3, 4).to(d) for d in DTYPES}
    tensors["s"] = torch.tensor(2.5)
    save_file(tensors, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps({}))
    return tmp_path


def stored(folder, name):
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        return f.get_tensor(name)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_whole_tensor_equals_safetensors(folder, dtype):
    name = f"w.{str(dtype).removeprefix('torch.')}"
    tensor = read_tensor(Checkpoint.open(folder), name)
    assert tensor.dtype == dtype and tuple(tensor.shape) == (6, 3, 4)
    assert torch.equal(tensor, stored(folder, name))


def test_scalar(folder):
    assert torch.equal(read_tensor(Checkpoint.open(folder), "s"), stored(folder, "s"))


@pytest.mark.parametrize("rows", [[4], [3, 4, 5, 0, 1], [5, 2, 0, 2], []])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_rows_equal_slicing_the_whole_tensor(folder, dtype, rows):
    name = f"w.{str(dtype).removeprefix('torch.')}"
    got = read_tensor(Checkpoint.open(folder), name, rows)
    assert tuple(got.shape) == (len(rows), 3, 4)
    assert torch.equal(got, stored(folder, name)[rows])


def test_one_range_per_contiguous_run(folder):
    checkpoint = Checkpoint.open(folder)
    info = checkpoint.tensor("w.float32")
    base = checkpoint.shards["model.safetensors"].data_start + info.begin
    row = 3 * 4 * 4  # bytes of one [3, 4] fp32 row
    where = tensor_bytes(checkpoint, "w.float32", [3, 4, 5, 0, 1])
    assert where.ranges == ((base + 3 * row, 3 * row), (base, 2 * row))
    assert where.shape == (5, 3, 4) and where.nbytes == 5 * row and where.dtype == "F32"
    assert tensor_bytes(checkpoint, "w.float32").ranges == ((base, info.nbytes),)


def test_row_out_of_range(folder):
    with pytest.raises(CheckpointError, match="has 6 rows in dim 0; row 6 is not one of them"):
        tensor_bytes(Checkpoint.open(folder), "w.float32", [0, 6])


def test_into_a_callers_buffer(folder):
    checkpoint = Checkpoint.open(folder)
    row = 3 * 4 * 2  # bytes of one bf16 row
    buffer = torch.zeros(10 + 2 * row, dtype=torch.uint8)
    got = read_tensor(checkpoint, "w.bfloat16", [5, 1], into=buffer[10:])
    assert got.data_ptr() == buffer[10:].data_ptr()  # a view of the caller's bytes, no copy
    assert torch.equal(got, stored(folder, "w.bfloat16")[[5, 1]])
    assert not buffer[:10].any()
    with pytest.raises(CheckpointError, match=f"holds {row} bytes, not the {row + 1} its slot needs"):
        read_tensor(checkpoint, "w.bfloat16", [5], into=torch.empty(row + 1, dtype=torch.uint8))


def test_allocator(folder):
    sizes = []

    def allocate(nbytes):
        sizes.append(nbytes)
        return torch.empty(nbytes, dtype=torch.uint8)

    got = read_tensor(Checkpoint.open(folder), "w.float16", [2], allocate=allocate)
    assert sizes == [3 * 4 * 2] and torch.equal(got, stored(folder, "w.float16")[[2]])


def test_truncated_after_open(folder):
    checkpoint = Checkpoint.open(folder)  # the header was whole when opened
    last = max(checkpoint.tensors(), key=lambda t: t.end)
    shard = folder / "model.safetensors"
    shard.write_bytes(shard.read_bytes()[:-10])
    message = f"model.safetensors is truncated: {last.name!r} needs {last.nbytes} bytes, {last.nbytes - 10} were read"
    with pytest.raises(CheckpointError, match=message):
        read_tensor(checkpoint, last.name)
    with pytest.raises(CheckpointError, match="is truncated"):
        read_tensor(checkpoint, last.name, [last.shape[0] - 1])


def test_missing_shard_and_unknown_tensor(folder):
    checkpoint = Checkpoint.open(folder)
    with pytest.raises(CheckpointError, match="is not in"):
        read_tensor(checkpoint, "nope")
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="cannot open shard .*model.safetensors: No such file"):
        read_tensor(checkpoint, "s")


def test_reader_across_shards_equals_safetensors(tmp_path):
    model = write_tiny_model(tmp_path / "m", "olmoe", max_shard_size="60KB")
    checkpoint = Checkpoint.open(model)
    assert len(checkpoint.shards) > 2
    with TensorReader(checkpoint) as reader:
        for info in checkpoint.tensors():  # shard after shard, and back
            with safe_open(str(checkpoint.shard_path(checkpoint.weight_map[info.name])), "pt") as f:
                expected = f.get_tensor(info.name)
            assert torch.equal(reader.get(info.name), expected)
            if expected.ndim >= 2 and expected.shape[0] > 2:
                rows = [2, 0, 1]
                assert torch.equal(reader.get_rows(info.name, rows), expected[rows])


def test_no_rows_of_an_empty_dim_0(tmp_path):
    """A tensor with no rows (e.g. [0, 4]) asked for no rows: an empty tensor, not a division by zero."""
    save_file({"e": torch.zeros(0, 4)}, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps({}))
    checkpoint = Checkpoint.open(tmp_path)
    assert tuple(read_tensor(checkpoint, "e", rows=[]).shape) == (0, 4)
    with pytest.raises(CheckpointError, match="has 0 rows"):
        tensor_bytes(checkpoint, "e", rows=[0])
