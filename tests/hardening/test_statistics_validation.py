"""Statistics files (profiles, pool indexes) are untrusted input: finite, non-negative, shaped as the model's.

Before: a NaN or negative mass gave a plan (keeping the least-used experts), and a model shard passed as
a profile ended in numpy's "data type 'bfloat16' not understood". Each case: exit 1, one line naming the
file and the tensor, no plan written, nothing changed.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hardening_helpers import one_line_error, snapshot
from safetensors.torch import save_file

from emo_prune.io import Checkpoint, model_identity
from emo_prune.profile.store import Profile


def write_profile(model, path, **poison):
    """A profile of `model` for domain 'math' with positive statistics; `poison` = {stat: value} put at [0, 3]."""
    checkpoint = Checkpoint.open(model)
    profile = Profile(layouts=list(checkpoint.architecture.layouts), model=model_identity(checkpoint))
    stats = profile.domain("math")
    rng = np.random.default_rng(0)
    for values in stats.expert.values():
        values[:] = rng.uniform(1, 10, values.shape)
    stats.entropy[:] = 1.0
    stats.num_tokens, stats.num_documents = 1000, 10
    for stat, value in poison.items():
        stats.expert[stat][0, 3] = value
    return profile.save(path)


def select(cli, model, profile, tmp_path):
    return cli("select", model, "--profile", profile, "--domain", "math", "--keep", "0.5", "--out", tmp_path / "plan.json")


def test_a_sound_profile_still_selects(cli, model, tmp_path):
    profile = write_profile(model, tmp_path / "p.safetensors")
    result = select(cli, model, profile, tmp_path)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "plan.json").exists()


@pytest.mark.parametrize(
    "stat, value, shown",
    [
        ("prob_mass", math.nan, "nan"),  # a NaN mass
        ("prob_mass", -5.0, "-5.0"),  # a negative mass would rank the expert last
        ("tokens", math.inf, "inf"),
        ("reap", -1e-3, "-0.001"),
    ],
)
def test_non_finite_or_negative_statistics_are_refused(cli, model, tmp_path, stat, value, shown):
    profile = write_profile(model, tmp_path / "p.safetensors", **{stat: value})
    before = snapshot(tmp_path)
    result = select(cli, model, profile, tmp_path)
    one_line_error(result, "profile error:", str(profile), f"'math/{stat}' holds {shown} at index [0, 3]")
    assert snapshot(tmp_path) == before and not (tmp_path / "plan.json").exists()


def test_a_model_shard_given_as_a_profile_is_named_as_such(cli, model, tmp_path):
    shard = tmp_path / "model-00001-of-00002.safetensors"
    save_file({"model.embed_tokens.weight": torch.zeros(4, 2, dtype=torch.bfloat16)}, shard, metadata={"format": "pt"})
    before = snapshot(tmp_path)
    result = select(cli, model, shard, tmp_path)
    line = one_line_error(result, "profile error:", str(shard), "is not an emo-prune profile", "model weights")
    assert "bfloat16" not in line
    assert snapshot(tmp_path) == before


def _index_parts(model):
    """Tensors and metadata of a well-formed pool index for `model` (2 MoE layers of 8 experts, 7 routed)."""
    from emo_prune.serve.index_file import FORMAT, router_fingerprint

    checkpoint = Checkpoint.open(model)
    keys = torch.nn.functional.normalize(torch.rand(3, 7), dim=1)
    tensors = {"keys": keys, "values.0": torch.rand(3, 8), "values.1": torch.rand(3, 8)}
    meta = {
        "format": FORMAT,
        "key_layer": 0,
        "power": 1.0,
        "mass_of": "document",
        "fingerprint": router_fingerprint(checkpoint),
        "domains": ["math", "code", "prose"],
    }
    return checkpoint, tensors, meta


@pytest.mark.parametrize("value, shown", [(math.nan, "nan"), (-0.5, "-0.5")])
def test_pool_index_values_are_validated_on_load(model, tmp_path, value, shown):
    from emo_prune.errors import PlanError
    from emo_prune.serve.index_file import META_KEY, PoolIndex

    checkpoint, tensors, meta = _index_parts(model)
    save_file(tensors, tmp_path / "good.safetensors", metadata={META_KEY: json.dumps(meta)})
    assert len(PoolIndex.load(tmp_path / "good.safetensors", checkpoint).domains) == 3  # the sound one loads
    tensors["values.1"][2, 5] = value
    save_file(tensors, tmp_path / "bad.safetensors", metadata={META_KEY: json.dumps(meta)})
    with pytest.raises(PlanError, match=rf"'values.1' holds {shown} at index \[2, 5\]"):
        PoolIndex.load(tmp_path / "bad.safetensors", checkpoint)


def test_a_poisoned_pool_index_stops_generate(cli, model, tmp_path):
    from emo_prune.serve.index_file import META_KEY

    _, tensors, meta = _index_parts(model)
    tensors["values.0"][0, 0] = math.nan
    index = tmp_path / "pools.index.safetensors"
    save_file(tensors, index, metadata={META_KEY: json.dumps(meta)})
    before = snapshot(tmp_path)
    result = cli("generate", model, "--prompt", "1 + 1 =", "--max-new-tokens", "1", "--pool", "0.5", "--pool-index", index)
    one_line_error(result, "plan error:", str(index), "'values.0' holds nan")
    assert snapshot(tmp_path) == before


def test_a_model_shard_given_as_a_pool_index_is_named_as_such(model, tmp_path):
    from emo_prune.errors import PlanError
    from emo_prune.serve.index_file import PoolIndex

    checkpoint = Checkpoint.open(model)
    shard = checkpoint.shard_path(min(checkpoint.shards))
    with pytest.raises(PlanError, match="is not an emo-prune pool index"):
        PoolIndex.load(shard, checkpoint)
