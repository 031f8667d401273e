"""Malformed values and unusable outputs: one line, exit 1, no traceback, nothing written."""

from __future__ import annotations

import json
import os
import time
from collections import namedtuple

import pytest
import torch
import yaml
from hardening_helpers import one_line_error, snapshot
from safetensors.torch import save_file


def _recipe(model, tmp_path, **changes):
    recipe = {
        "name": "r",
        "model": str(model),
        "calibration": {"sources": ["builtin:math:train"], "max_tokens": 200},
        "budgets": [0.5],
    }
    recipe.update(changes)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _read_only(tmp_path, how):
    """A folder nothing can be written into: under a plain file, or chmod 555 (root ignores modes)."""
    if how == "under a file":
        (tmp_path / "a-file").write_text("x")
        return tmp_path / "a-file" / "sub"
    if os.geteuid() == 0:
        pytest.skip("root writes into a read-only folder anyway")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


@pytest.mark.parametrize("how", ["under a file", "chmod 555"])
@pytest.mark.parametrize("command", ["select", "profile", "run"])
def test_unwritable_output(cli, source_model, tmp_path, command, how):
    target = _read_only(tmp_path, how)
    args = {
        "select": ["select", source_model, "--keep", "0.5", "--method", "random", "--out", target / "plan.json"],
        "profile": ["profile", source_model, "--calib", "builtin:math:train", "--out", target / "p.safetensors"],
        "run": ["run", _recipe(source_model, tmp_path), "--out", target / "run"],
    }[command]
    before = snapshot(tmp_path)
    try:
        one_line_error(cli(*args), "output error:", "cannot")
    finally:
        if how != "under a file":
            target.chmod(0o755)
    assert snapshot(tmp_path) == before


BOMB = "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))


def test_alias_bomb_is_refused_cheaply_with_set(cli, source_model, tmp_path):
    """10^9 values once expanded; refused in about the time it takes to parse the file."""
    path = _recipe(source_model, tmp_path)
    path.write_text(path.read_text() + "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + BOMB)
    before = snapshot(tmp_path)
    started = time.perf_counter()
    result = cli("run", path, "--set", "budgets=[0.25]", "--out", tmp_path / "run")
    one_line_error(result, "recipe error:", "expands to more than", "YAML aliases")
    assert time.perf_counter() - started < 30
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "value, says",
    [
        ("&a [*a]", "refers to itself"),  # a recursive alias inside one --set value
        ("&a [x, x, x, x, x, x, x, x, x, x]", None),  # fine on its own
    ],
)
def test_set_values_are_checked_too(cli, source_model, tmp_path, value, says):
    path = _recipe(source_model, tmp_path)
    result = cli("run", path, "--set", f"description={value}", "--out", tmp_path / "run")
    one_line_error(result, "recipe error:", says or "description: Input should be a valid string")


def test_a_yaml_date_with_set_is_a_field_error(cli, source_model, tmp_path):
    path = _recipe(source_model, tmp_path, description="x")
    path.write_text(path.read_text().replace("description: x", "description: 2020-01-01\nbudgets: []"))
    result = cli("run", path, "--set", "eval.limit=2", "--out", tmp_path / "run")
    one_line_error(result, "recipe error:", "budgets:")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "model, says",
    [
        ("no/such/folder/here", "model folder not found"),  # a relative path to nothing, not an org/name id
        ("../missing-model", "model folder not found"),
        ("https://huggingface.co/org/name", "model folder not found"),
        ("org/not-cached", "neither a local folder nor in the Hugging Face cache"),  # HF_HUB_OFFLINE=1 in tests
    ],
)
def test_recipe_model_that_names_nothing(cli, tmp_path, model, says):
    path = _recipe(model, tmp_path)
    before = snapshot(tmp_path)
    one_line_error(cli("run", path, "--out", tmp_path / "run"), "checkpoint error:", says)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "change, says",
    [
        ({"experts_kept_per_layer": "all"}, "must be a list"),
        ({"experts_kept_per_layer": [[1, "4", 6, 7], [1, 4, 6, 7]]}, "integer expert ids"),
        ({"domains": "code"}, "field 'domains' must be a list of strings"),
        ({"coverage": {"code": "high"}}, "field 'coverage'"),
        ({"seed": "1"}, "field 'seed' must be an integer"),
        ({"source_model": 5}, "field 'source_model'"),
    ],
)
def test_malformed_plan_fields(cli, source_model, plan_file, tmp_path, change, says):
    plan_file.write_text(json.dumps({**json.loads(plan_file.read_text()), **change}))
    before = snapshot(tmp_path)
    one_line_error(cli("extract", source_model, "--plan", plan_file, "--out", tmp_path / "out"), "plan error:", says)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "meta, tensors, says",
    [
        ("{not json", {}, "is not valid JSON"),
        (json.dumps({"format": 1}), {}, "not a consistent profile"),
        (
            json.dumps(
                {
                    "format": 1,
                    "model": {},
                    "layouts": [{"experts": 8, "shared": 1, "always_active": [], "top_k": 2, "norm_topk_prob": False}] * 2,
                    "domains": {"code": {}},
                }
            ),  # fmt: skip
            {
                f"code/{s}": torch.zeros(2, 3, dtype=torch.float64)
                for s in ("tokens", "prob_mass", "gate_weight", "reap", "pool_25", "pool_12")
            }
            | {"code/entropy": torch.zeros(2, dtype=torch.float64), "code/counts": torch.zeros(2, dtype=torch.float64)},
            "not a consistent profile",  # [2, 3] statistics for 8 experts
        ),
    ],
)
def test_malformed_profile(cli, source_model, tmp_path, meta, tensors, says):
    profile = tmp_path / "p.safetensors"
    save_file(tensors or {"x": torch.zeros(1)}, str(profile), metadata={"emo_prune.profile": meta})
    before = snapshot(tmp_path)
    result = cli(
        "select", source_model, "--profile", profile, "--domain", "code", "--keep", "0.5", "--out", tmp_path / "plan.json"
    )
    one_line_error(result, "profile error:", says)
    assert snapshot(tmp_path) == before


def test_free_space_scales_with_the_output(cli, source_model, plan_file, tmp_path, monkeypatch):
    """A build of ~1.5 MB with 8 MB free goes ahead (a fixed 64 MB margin refused it); with 1 MB it is refused."""
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr("emo_prune.extract.run.shutil.disk_usage", lambda _p: usage(10**9, 10**9, 8 * 10**6))
    assert cli("extract", source_model, "--plan", plan_file, "--out", tmp_path / "out").exit_code == 0
    monkeypatch.setattr("emo_prune.extract.run.shutil.disk_usage", lambda _p: usage(10**9, 10**9, 10**6))
    before = snapshot(tmp_path)
    one_line_error(cli("extract", source_model, "--plan", plan_file, "--out", tmp_path / "out2"), "output error:", "bytes free")
    assert snapshot(tmp_path) == before
