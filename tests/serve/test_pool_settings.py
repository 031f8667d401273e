"""PoolSettings, the one declaration of the pool options: the CLI's flags, EvalSettings and lm-eval's
model_args all reach it, with its defaults."""

from __future__ import annotations

from dataclasses import fields

import pytest
import torch

from emo_prune.cli.pool_options import PoolFlags
from emo_prune.errors import PlanError
from emo_prune.eval.harness import EvalSettings
from emo_prune.serve.settings import DEFAULTS, PoolSettings, compute_dtype


def test_the_flags_carry_the_settings_defaults():
    flags = PoolFlags()
    assert flags.settings() is None  # no --pool: no pool mode
    for field in fields(PoolSettings):
        if field.name != "pool":  # --pool's absence means "whole"; PoolSettings' pool is the size once on
            assert getattr(flags, field.name) == getattr(DEFAULTS, field.name), field.name
    assert PoolFlags(pool="0.125", draft=2).settings() == PoolSettings(pool="0.125", draft=2)
    with pytest.raises(PlanError, match="give their size too"):
        PoolFlags(pool_index="x.safetensors").settings()


def test_model_args_as_text():
    # lm-eval's --model_args arrive as text (or numbers it parsed); empty ones take the defaults
    assert PoolSettings.from_text(pool=0.125, draft="4", pool_power="2", pool_index="") == PoolSettings(
        pool="0.125", draft=4, pool_power=2.0
    )
    assert PoolSettings.from_text() == DEFAULTS
    with pytest.raises(PlanError, match="unknown pool model_args: pools"):
        PoolSettings.from_text(pools="0.5")
    with pytest.raises(PlanError, match="pool model_args"):
        PoolSettings.from_text(draft="many")
    with pytest.raises(PlanError, match="--draft must be >= 0"):
        PoolSettings.from_text(draft="-1")


def test_eval_settings_record_the_pool_options_flat():
    """The results file's `settings` keep one key per option, as before EvalSettings held a PoolSettings."""
    keys = [
        "pool",
        "reselect_every",
        "draft",
        "draft_rounds",
        "pool_power",
        "pool_index",
        "pool_neighbours",
        "index_weight",
        "cache_budget",
        "cache_policy",
        "coverage_warn",
    ]
    whole = EvalSettings(tasks=("t",)).to_dict()
    assert list(whole)[-len(keys) :] == keys and whole["pool"] is None and whole["draft_rounds"] == 1
    pooled = EvalSettings(tasks=("t",), pool=PoolSettings(pool="0.5", draft=3)).to_dict()
    assert (pooled["pool"], pooled["draft"], pooled["cache_policy"]) == ("0.5", 3, "lru")


def test_auto_is_float32_in_pool_mode():
    assert compute_dtype("auto") == torch.float32
    assert compute_dtype("bfloat16") == torch.bfloat16
