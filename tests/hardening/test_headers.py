"""Shards that lie in their header: refused as safetensors itself refuses them, before a byte is copied."""

from __future__ import annotations

import json

import pytest
from hardening_helpers import one_line_error, read_raw_header, snapshot, write_raw_header


def busiest_shard(model):
    """The shard holding the most tensors."""
    shards = list(json.loads((model / "model.safetensors.index.json").read_text())["weight_map"].values())
    return model / max(set(shards), key=shards.count)


def _first_two(header):
    """Names of the first two tensors by offset."""
    return sorted((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][0])[:2]


def overlap(h, data):  # the second tensor starts inside the first
    a, b = _first_two(h)
    h[b]["data_offsets"] = [h[b]["data_offsets"][0] - 4, h[b]["data_offsets"][1] - 4]
    return h, data


def negative(h, data):
    a, _ = _first_two(h)
    h[a]["data_offsets"] = [-4, h[a]["data_offsets"][1] - 4]
    return h, data


def floats(h, data):
    a, _ = _first_two(h)
    h[a]["data_offsets"] = [float(x) for x in h[a]["data_offsets"]]
    return h, data


def booleans(h, data):  # JSON true is not an integer offset
    a, _ = _first_two(h)
    h[a]["data_offsets"] = [False, h[a]["data_offsets"][1]]
    return h, data


def gap(h, data):  # bytes that belong to no tensor, between two
    _, b = _first_two(h)
    for name, entry in h.items():
        if name != "__metadata__" and entry["data_offsets"][0] >= h[b]["data_offsets"][0]:
            entry["data_offsets"] = [x + 8 for x in entry["data_offsets"]]
    start = h[b]["data_offsets"][0] - 8
    return h, data[:start] + b"\0" * 8 + data[start:]


def trailing(h, data):  # bytes after the last tensor
    return h, data + b"\0" * 16


def shape_lies(h, data):  # the shape claims more elements than the offsets hold
    a, _ = _first_two(h)
    h[a]["shape"] = [d * 2 for d in h[a]["shape"]]
    return h, data


def float_shape(h, data):
    a, _ = _first_two(h)
    h[a]["shape"] = [float(d) for d in h[a]["shape"]]
    return h, data


def metadata_not_str(h, data):
    h["__metadata__"] = {"format": ["pt"]}
    return h, data


CASES = {
    overlap: "overlaps",
    negative: "is not a pair of non-negative integers",
    floats: "is not a pair of non-negative integers",
    booleans: "is not a pair of non-negative integers",
    gap: "leaves a gap after",
    trailing: "belong to none",
    shape_lies: "needs",
    float_shape: "is not a list of non-negative integers",
    metadata_not_str: "__metadata__ must map strings to strings",
}


@pytest.mark.parametrize("lie", list(CASES), ids=lambda f: f.__name__)
def test_a_lying_header_is_refused(cli, model, plan_file, tmp_path, lie):
    shard = busiest_shard(model)
    write_raw_header(shard, *lie(*read_raw_header(shard)))
    before = snapshot(tmp_path)
    result = cli("extract", model, "--plan", plan_file, "--out", tmp_path / "out")
    one_line_error(result, "checkpoint error:", shard.name, CASES[lie])
    assert snapshot(tmp_path) == before


def test_a_header_naming_a_tensor_twice_is_refused(cli, model, plan_file, tmp_path):
    shard = busiest_shard(model)
    header, data = read_raw_header(shard)
    raw = json.dumps(header)
    name = next(k for k in header if k != "__metadata__")
    raw = raw[:-1] + f', "{name}": ' + json.dumps(header[name]) + "}"  # the same key again, at the end
    blob = raw.encode() + b" " * (-len(raw) % 8)
    shard.write_bytes(len(blob).to_bytes(8, "little") + blob + data)
    before = snapshot(tmp_path)
    result = cli("inspect", model)
    one_line_error(result, "checkpoint error:", "appears twice")
    assert snapshot(tmp_path) == before
