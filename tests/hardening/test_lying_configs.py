"""Configs that lie about the tensors, refused by every loader (inspect, extract, and the model loader that
generate / verify / profile / eval share), from the headers, before anything is allocated.

Each case: exit 1, one line naming the config key (and the tensors where they disagree), nothing changed.
"""

from __future__ import annotations

import json
import tracemalloc

import pytest
import torch
from hardening_helpers import INDEX, drop_from_index, one_line_error, read_raw_header, set_config, snapshot, write_raw_header

GENERATE = ("--prompt", "def add(a, b):", "--max-new-tokens", "2")


def run(cli, command, model, tmp_path):
    """`command` on `model`; extract uses the conftest `plan_file` (tmp_path/plan.json, written before the test)."""
    if command == "inspect":
        return cli("inspect", model)
    if command == "generate":
        return cli("generate", model, *GENERATE)
    if command == "extract":
        return cli("extract", model, "--plan", tmp_path / "plan.json", "--out", tmp_path / "build")
    return cli("profile", model, "--calib", "builtin:math:train", "--max-tokens", "200", "--out", tmp_path / "p.safetensors")


@pytest.mark.parametrize("command", ["inspect", "generate", "extract", "profile"])
def test_top_k_above_the_expert_count_is_refused(cli, model, plan_file, tmp_path, command):
    set_config(model, num_experts_per_tok=100)  # 8 experts per layer
    before = snapshot(tmp_path)
    result = run(cli, command, model, tmp_path)
    one_line_error(result, "config error:", "'num_experts_per_tok' is 100", "no layer has more than 8 experts")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", ["inspect", "generate", "extract", "profile"])
def test_a_moe_layer_declared_dense_is_refused(cli, model, plan_file, tmp_path, command):
    set_config(model, num_experts_per_layer=[0, 8])  # layer 0 holds a router and 8 experts on disk
    before = snapshot(tmp_path)
    result = run(cli, command, model, tmp_path)
    one_line_error(result, "config error:", "declares layer 0 dense", "'num_experts_per_layer'", "model.layers.0.mlp")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", ["inspect", "generate"])
def test_a_billion_layers_is_refused_from_the_headers(cli, model, tmp_path, command):
    set_config(model, num_hidden_layers=10**9)
    before = snapshot(tmp_path)
    result = run(cli, command, model, tmp_path)
    one_line_error(result, "config error:", "num_hidden_layers is 1000000000", "tensors hold 2 layers")
    assert snapshot(tmp_path) == before


def test_the_layer_bound_allocates_nothing_per_claimed_layer(model):
    """A list of 10**9 layouts would be GBs: the refusal comes before any per-layer structure is built."""
    from emo_prune.errors import ConfigError
    from emo_prune.io.summary import inspect_model

    set_config(model, num_hidden_layers=10**9)
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError, match="num_hidden_layers"):
            inspect_model(model)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, peak


def test_a_lying_expert_count_is_blamed_on_the_config_not_the_plan(cli, model, plan_file, tmp_path):
    """The plan keeps expert 6 and 7 of 8 held; a config claiming 6 experts is the liar."""
    set_config(model, num_experts=6)
    before = snapshot(tmp_path)
    result = cli("extract", model, "--plan", plan_file, "--out", tmp_path / "out")
    line = one_line_error(
        result, "checkpoint error:", "model.layers.0.mlp.gate.weight has 8 rows", "'num_experts'", "in config.json"
    )
    assert "plan" not in line
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", ["generate", "profile"])
def test_a_missing_expert_tensor_stops_the_model_loader(cli, model, tmp_path, command):
    """Before: generate ran with that expert's rows taken from torch.empty."""
    name = "model.layers.1.mlp.experts.4.up_proj.weight"
    drop_from_index(model, name)
    before = snapshot(tmp_path)
    result = run(cli, command, model, tmp_path)
    one_line_error(result, "checkpoint error:", repr(name), "is not in the checkpoint")
    assert snapshot(tmp_path) == before


def test_layer_state_never_leaves_expert_rows_uninitialized(model):
    """The loader's own guard, past the inventory: a fused buffer with an unfilled expert is an error."""
    from emo_prune.errors import CheckpointError
    from emo_prune.io import Checkpoint
    from emo_prune.models.weights import layer_state

    checkpoint = Checkpoint.open(model)
    name = "model.layers.0.mlp.experts.2.down_proj.weight"
    del checkpoint.weight_map[name]  # as if the inventory had let it through
    with pytest.raises(CheckpointError, match="experts.2.down_proj.weight' is not in the checkpoint"):
        layer_state(checkpoint, checkpoint.architecture, 0, torch.float32, torch.device("cpu"))


@pytest.mark.parametrize("metadata", [[], False, {"format": 1}, "pt"])
def test_safetensors_metadata_must_map_strings_to_strings(cli, model, tmp_path, metadata):
    shard = model / json.loads((model / INDEX).read_text())["weight_map"]["lm_head.weight"]
    header, data = read_raw_header(shard)
    header["__metadata__"] = metadata
    write_raw_header(shard, header, data)
    before = snapshot(tmp_path)
    result = cli("inspect", model)
    one_line_error(result, "checkpoint error:", shard.name, "__metadata__ must map strings to strings")
    assert snapshot(tmp_path) == before
