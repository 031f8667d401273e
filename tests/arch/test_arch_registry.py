"""The architecture registry: every family resolves layouts and tensor roles from real checkpoints."""

from __future__ import annotations

import pytest

from emo_prune.arch import architecture_for_config, families, supported_model_types
from emo_prune.arch.family import parse_family
from emo_prune.errors import ConfigError, UnknownArchitectureError
from emo_prune.io import Checkpoint, build_inventory
from emo_prune.testing import FAMILIES, write_tiny_model


def test_every_family_has_a_description():
    assert set(families()) == set(FAMILIES)
    assert set(supported_model_types()) == {"emo", "olmoe", "mixtral", "qwen2_moe", "qwen3_moe"}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("storage", ["per_expert", "fused"])
def test_roles_cover_every_expert_tensor(family, storage, tmp_path):
    path = write_tiny_model(tmp_path / family, family, storage=storage, experts=6, top_k=2, layers=2)
    checkpoint = Checkpoint.open(path)
    arch = checkpoint.architecture
    roles = [arch.classify(n) for n in checkpoint.names]
    assert [lay.num_experts for lay in arch.layouts] == [6, 6]
    assert sum(r.kind == "router" for r in roles) == 2
    if storage == "per_expert":
        assert sum(r.kind == "expert" for r in roles) == 2 * 6 * 3
        assert {r.expert for r in roles if r.kind == "expert"} == set(range(6))
    else:
        assert sum(r.kind == "fused" for r in roles) == 2 * 2
    for entry in build_inventory(checkpoint):
        assert entry.storage == storage
        # one expert = gate + up + down = 3 * I * H parameters
        assert entry.expert_params == 3 * 32 * 64


def test_qwen_dense_layers_from_mlp_only_layers(tmp_path):
    path = write_tiny_model(tmp_path / "q", "qwen3_moe", layers=3, dense_layers=[1])
    arch = Checkpoint.open(path).architecture
    assert [lay.num_experts for lay in arch.layouts] == [8, 0, 8]
    assert arch.layouts[1].is_dense


def test_qwen_decoder_sparse_step():
    config = {"model_type": "qwen2_moe", "num_hidden_layers": 4, "hidden_size": 8, "num_experts": 4,
              "num_experts_per_tok": 2, "moe_intermediate_size": 4, "decoder_sparse_step": 2}  # fmt: skip
    assert [lay.num_experts for lay in architecture_for_config(config).layouts] == [0, 4, 0, 4]


def test_emo_layouts_shared_always_active_and_dense():
    config = {"model_type": "emo", "num_hidden_layers": 3, "hidden_size": 8, "intermediate_size": 4,
              "num_experts": 8, "num_experts_per_tok": 4, "num_shared_experts": 1,
              "num_experts_per_layer": [0, 8, 6], "always_active_experts_per_layer": [None, None, [0, 3]]}  # fmt: skip
    dense, shared, always = architecture_for_config(config).layouts
    assert dense.is_dense and dense.top_k == 0
    assert shared.fixed_ids == (7,) and shared.routed_ids == tuple(range(7))
    assert always.always_active == (0, 3) and always.fixed_ids == (0, 3) and len(always.routed_ids) == 4
    assert always.routing_spec().routed_top_k == 2


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"num_experts_per_layer": [8]}, "one per layer"),
        ({"num_shared_experts": 5}, "do not fit in top-k"),
        ({"always_active_experts": [9]}, "always-active ids"),
        ({"num_experts_per_tok": 0}, "positive integer"),
    ],
)
def test_inconsistent_configs_are_clear_errors(patch, message):
    config = {"model_type": "emo", "num_hidden_layers": 2, "hidden_size": 8, "intermediate_size": 4,
              "num_experts": 8, "num_experts_per_tok": 4, "num_shared_experts": 1, **patch}  # fmt: skip
    with pytest.raises(ConfigError, match=message):
        architecture_for_config(config)


def test_unknown_model_type_names_the_supported_ones():
    with pytest.raises(UnknownArchitectureError, match="'llama'.*supported: emo, mixtral, olmoe"):
        architecture_for_config({"model_type": "llama"})
    with pytest.raises(UnknownArchitectureError, match="no 'model_type'"):
        architecture_for_config({})


def test_family_description_missing_fields_are_named():
    data = {"name": "x", "model_types": ["x"]}
    with pytest.raises(UnknownArchitectureError, match="lacks layer_prefix, config_keys, router, experts"):
        parse_family(data, source="x.json")
