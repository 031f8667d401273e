"""Containment: paths read from files (index entries, side files, recipe build names) stay inside their folder.

Each case: exit 1, one line naming the entry, nothing written and nothing outside the target changed.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
import yaml
from hardening_helpers import hf_snapshot, one_line_error, snapshot

INDEX = "model.safetensors.index.json"


@pytest.mark.parametrize(
    "entry, says",
    [
        ("../outside.safetensors", "climbs out of"),  # a `..` component
        ("ABSOLUTE", "is an absolute path"),  # the absolute path of a real shard outside the folder
        ("inside-link.safetensors", "is a symlink to"),  # a symlink inside the folder that points out of it
    ],
)
def test_index_entry_leaving_the_model_folder_is_refused(cli, model, plan_file, tmp_path, entry, says):
    outside = tmp_path / "outside.safetensors"
    shard = json.loads((model / INDEX).read_text())["weight_map"]["lm_head.weight"]
    shutil.move(model / shard, outside)  # the real bytes now live outside the folder
    (model / "inside-link.safetensors").symlink_to(outside)
    entry = str(outside) if entry == "ABSOLUTE" else entry
    index = json.loads((model / INDEX).read_text())
    index["weight_map"] = {k: (entry if v == shard else v) for k, v in index["weight_map"].items()}
    (model / INDEX).write_text(json.dumps(index))
    before = snapshot(tmp_path)
    result = cli("extract", model, "--plan", plan_file, "--out", tmp_path / "out")
    one_line_error(result, "unsafe path:", repr(entry), "model.safetensors.index.json")
    assert snapshot(tmp_path) == before


def test_hf_cache_snapshot_symlinks_into_blobs_keep_working(cli, source_model, plan_file, tmp_path):
    """HF_HOME/hub/models--org--name/snapshots/<rev>/<file> -> ../../blobs/<name>: the layout of every cached model."""
    snapshot_dir = hf_snapshot(source_model, tmp_path / "hub")
    out = tmp_path / "out"
    result = cli("extract", snapshot_dir, "--plan", plan_file, "--out", out)
    assert result.exit_code == 0, result.output
    assert (out / "tokenizer.json").read_bytes() == (source_model / "tokenizer.json").read_bytes()
    assert not (out / "tokenizer.json").is_symlink()


def test_side_file_symlinks_copied_only_when_inside(cli, model, plan_file, tmp_path):
    (model / "notes").mkdir()
    (model / "notes" / "card.txt").write_text("inside the model folder")
    (model / "card.txt").symlink_to("notes/card.txt")
    out = tmp_path / "out"
    assert cli("extract", model, "--plan", plan_file, "--out", out).exit_code == 0
    assert (out / "card.txt").read_text() == "inside the model folder" and not (out / "card.txt").is_symlink()

    secret = tmp_path / "secret.txt"
    secret.write_text("my ssh key")
    (model / "vocab.txt").symlink_to(secret)
    before = snapshot(tmp_path)
    result = cli("extract", model, "--plan", plan_file, "--out", tmp_path / "out2")
    one_line_error(result, "unsafe path:", "side file", "'vocab.txt'", str(secret))
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "output",
    [
        {"name": "../../escaped"},  # output.name climbs out of builds/
        {"pattern": "../../{budget}"},  # output.pattern does
        {"pattern": "/tmp/{budget}"},  # an absolute pattern
        {"pattern": "{domains}-{budget}"},  # a domain name with a slash, through the pattern
    ],
)
def test_recipe_build_names_stay_in_the_run_folder(cli, source_model, tmp_path, output):
    work = tmp_path / "work"
    work.mkdir()
    (work / "keep.txt").write_text("a neighbour")
    recipe = {
        "name": "r",
        "model": str(source_model),
        "calibration": {"sources": ["../x=builtin:math:train"], "domains": ["../x"], "max_tokens": 100},
        "budgets": [0.5],
        "output": output,
    }
    if "domains" not in output.get("pattern", ""):
        recipe["calibration"] = {"sources": ["builtin:math:train"], "max_tokens": 100}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    before = snapshot(tmp_path)
    result = cli("run", tmp_path / "recipe.yaml", "--out", work / "run")
    # output.name is refused as a field (tests/hardening/test_names.py), a pattern once it is filled in
    says = (
        ("output.name: '../../escaped' is not a folder name",)
        if "name" in output
        else ("output.pattern / output.name", "not one plain folder name")
    )
    one_line_error(result, "recipe error:", *says)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("where", [".", "runs"])
def test_run_out_in_the_model_folder_is_refused_before_writing(cli, model, tmp_path, where):
    recipe = {"name": "r", "model": str(model), "calibration": {"sources": ["builtin:math:train"]}, "budgets": [0.5]}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    before = snapshot(tmp_path)
    result = cli("run", tmp_path / "recipe.yaml", "--out", os.path.normpath(model / where))
    one_line_error(result, "output error:", "is the model folder", "or lies inside it")
    assert snapshot(tmp_path) == before


def test_eval_checks_the_index_before_transformers_follows_it(cli, model, tmp_path):
    """transformers joins index entries to the folder as they are: emo-prune's checks must come first."""
    index = json.loads((model / INDEX).read_text())
    shard = index["weight_map"]["lm_head.weight"]
    shutil.move(model / shard, tmp_path / "outside.safetensors")
    index["weight_map"] = {k: ("../outside.safetensors" if v == shard else v) for k, v in index["weight_map"].items()}
    (model / INDEX).write_text(json.dumps(index))
    before = snapshot(tmp_path)
    result = cli("eval", model, "--tasks", "emo_ppl_math", "--limit", "1", "--out", tmp_path / "results.json")
    one_line_error(result, "unsafe path:", "'../outside.safetensors'")
    assert snapshot(tmp_path) == before


def test_a_symlinked_builds_folder_in_a_run_folder_is_refused(cli, source_model, tmp_path):
    from emo_prune.io.ownership import write_owner_marker

    run, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    run.mkdir()
    elsewhere.mkdir()
    write_owner_marker(run, "run")  # a run folder emo-prune made ...
    (run / "builds").symlink_to(elsewhere)  # ... into which someone planted a way out
    recipe = {
        "name": "r", "model": str(source_model), "budgets": [0.5],
        "calibration": {"sources": ["builtin:math:train"], "domains": ["math"], "max_tokens": 200, "seq_len": 64},
    }  # fmt: skip
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    result = cli("--quiet", "run", tmp_path / "recipe.yaml", "--out", run)  # no step status lines
    # refused before the profile step now, by the run folder's check of its own subfolders (io/confine.py)
    one_line_error(result, "output error:", f"{run / 'builds'} is a symlink inside the output folder")
    assert list(elsewhere.iterdir()) == []
