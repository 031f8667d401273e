"""Checkpoints whose tensors disagree with their config, and weights that are NaN / Inf.

The plan is checked against the tensors themselves (router rows, per-expert keys, one dtype/shape per
projection), so a config that claims more or fewer experts is refused instead of yielding a broken build.
"""

from __future__ import annotations

import json
import math
import struct

import pytest
from hardening_helpers import drop_from_index, one_line_error, read_raw_header, set_config, snapshot, write_raw_header

from emo_prune.select import Plan

INDEX = "model.safetensors.index.json"


def shard_of(model, tensor):
    return model / json.loads((model / INDEX).read_text())["weight_map"][tensor]


def poison(model, tensor, value=math.nan, element=0):
    """Overwrite one element of a float32 tensor in place."""
    shard = shard_of(model, tensor)
    header, _ = read_raw_header(shard)
    start = 8 + int.from_bytes(shard.read_bytes()[:8], "little") + header[tensor]["data_offsets"][0] + 4 * element
    with shard.open("r+b") as f:
        f.seek(start)
        f.write(struct.pack("<f", value))


@pytest.mark.parametrize(
    "experts, plan, says",
    [
        (10, [[1, 4, 8, 9], [1, 4, 8, 9]], "has 8 rows but the config gives layer 0 10 experts"),  # more than held
        (6, [[1, 2, 5], [1, 2, 5]], "has 8 rows but the config gives layer 0 6 experts"),  # fewer than held
    ],
)
def test_config_counts_must_equal_tensor_counts(cli, model, tmp_path, experts, plan, says):
    set_config(model, num_experts=experts)
    plan_file = Plan(plan).save(tmp_path / "lying-plan.json")
    before = snapshot(tmp_path)
    result = cli("extract", model, "--plan", plan_file, "--out", tmp_path / "out")
    one_line_error(result, "checkpoint error:", says)
    assert snapshot(tmp_path) == before


def test_missing_per_expert_key_is_refused(cli, model, plan_file, tmp_path):
    name = "model.layers.1.mlp.experts.4.up_proj.weight"
    drop_from_index(model, name)
    before = snapshot(tmp_path)
    result = cli("extract", model, "--plan", plan_file, "--out", tmp_path / "out")
    one_line_error(result, "checkpoint error:", repr(name), "is not in the checkpoint")
    assert snapshot(tmp_path) == before


def test_one_dtype_and_shape_per_expert_projection(cli, model, plan_file, tmp_path):
    name = "model.layers.0.mlp.experts.3.gate_proj.weight"
    shard = shard_of(model, name)
    header, data = read_raw_header(shard)
    rows, cols = header[name]["shape"]
    header[name].update(dtype="F16", shape=[rows * 2, cols])  # the same bytes, read as another dtype
    write_raw_header(shard, header, data)
    before = snapshot(tmp_path)
    result = cli("extract", model, "--plan", plan_file, "--out", tmp_path / "out")
    one_line_error(result, "checkpoint error:", name, "all experts of a layer must agree")
    assert snapshot(tmp_path) == before


def test_nan_in_a_kept_expert_warns_and_strict_refuses(cli, model, plan_file, tmp_path):
    name = "model.layers.0.mlp.experts.4.down_proj.weight"  # expert 4 is kept
    poison(model, name)
    before = snapshot(tmp_path)
    result = cli("extract", model, "--plan", plan_file, "--out", tmp_path / "strict", "--strict")
    one_line_error(result, "checkpoint error:", "NaN/Inf", name, "--strict")
    assert snapshot(tmp_path) == before
    result = cli("extract", model, "--plan", plan_file, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    warning = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and name in warning[0]
    assert json.loads((tmp_path / "out" / "emo_prune.json").read_text())["extraction"]["nonfinite"] == [name]


def test_inf_in_a_router_row_is_found_and_a_dropped_expert_is_not_read(cli, model, plan_file, tmp_path):
    poison(model, "model.layers.1.mlp.experts.2.gate_proj.weight")  # expert 2 is dropped: never read
    result = cli("extract", model, "--plan", plan_file, "--out", tmp_path / "clean", "--strict")
    assert result.exit_code == 0 and "warning" not in result.stderr, result.output
    router = "model.layers.1.mlp.gate.weight"  # [8, 64]
    poison(model, router, math.inf)  # row 0: expert 0 is dropped...
    result = cli("extract", model, "--plan", plan_file, "--out", tmp_path / "row0", "--strict")
    assert result.exit_code == 0, result.output  # ... so the kept rows are finite
    poison(model, router, math.inf, element=64)  # row 1: expert 1 is kept
    before = snapshot(tmp_path)
    result = cli("extract", model, "--plan", plan_file, "--out", tmp_path / "row1", "--strict")
    one_line_error(result, "checkpoint error:", "NaN/Inf", router)
    assert snapshot(tmp_path) == before


def test_verify_blames_a_non_finite_original_not_the_build(cli, model, plan_file, tmp_path):
    poison(model, "model.layers.0.mlp.experts.7.down_proj.weight")  # the shared expert: every token uses it
    assert cli("extract", model, "--plan", plan_file, "--out", tmp_path / "out").exit_code == 0
    result = cli("verify", model, tmp_path / "out", "--prompts", "1")
    one_line_error(result, "verification failed:", "the ORIGINAL", "NaN/Inf", "the build is not to blame")
