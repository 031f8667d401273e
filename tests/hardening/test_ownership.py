"""Ownership: --overwrite replaces only a folder emo-prune wrote, deletes only what it listed, and no
temporary file ever goes through a planted symlink."""

from __future__ import annotations

import json
import os

import pytest
import yaml
from hardening_helpers import one_line_error, snapshot

from emo_prune.io.ownership import OWNER_FILE, read_owner_marker


def test_overwrite_refuses_a_folder_that_merely_holds_emo_prune_json(cli, model, plan_file, tmp_path):
    """A downloaded model carries emo_prune.json; that alone must not let --overwrite delete it."""
    theirs = tmp_path / "downloaded"
    theirs.mkdir()
    (theirs / "emo_prune.json").write_text(json.dumps({"experts_kept_per_layer": [[0, 1], [0, 1]]}))
    (theirs / "weights.safetensors").write_bytes(b"precious")
    before = snapshot(tmp_path)
    result = cli("extract", model, "--plan", plan_file, "--out", theirs, "--overwrite")
    one_line_error(result, "output error:", f"refusing to replace {theirs}", OWNER_FILE)
    assert snapshot(tmp_path) == before


def add_a_stranger(out):
    (out / "my-notes.md").write_text("written by a person")
    return "it holds my-notes.md, which emo-prune did not write"


def list_it_by_hand(out):
    (out / "extra.bin").write_bytes(b"x")
    marker = json.loads((out / OWNER_FILE).read_text())
    marker["files"].append("extra.bin")  # listed, but the signature no longer matches
    (out / OWNER_FILE).write_text(json.dumps(marker))
    return "no intact"


@pytest.mark.parametrize("tamper", [add_a_stranger, list_it_by_hand], ids=lambda f: f.__name__)
def test_overwrite_refuses_an_emo_prune_folder_someone_changed(cli, model, plan_file, tmp_path, tamper):
    out = tmp_path / "out"
    assert cli("extract", model, "--plan", plan_file, "--out", out).exit_code == 0
    says = tamper(out)
    before = snapshot(tmp_path)
    result = cli("extract", model, "--plan", plan_file, "--out", out, "--overwrite")
    one_line_error(result, "output error:", says)
    assert snapshot(tmp_path) == before


def test_overwrite_replaces_exactly_what_emo_prune_listed(cli, model, plan_file, tmp_path):
    out = tmp_path / "out"
    assert cli("extract", model, "--plan", plan_file, "--out", out).exit_code == 0
    (tmp_path / "neighbour.txt").write_text("next to the build")
    listed = read_owner_marker(out)["files"]
    assert "config.json" in listed and "emo_prune.json" in listed and any(f.endswith(".safetensors") for f in listed)
    neighbours = {k: v for k, v in snapshot(tmp_path).items() if not k.startswith("out")}
    assert cli("extract", model, "--keep", "0.5", "--method", "random", "--out", out, "--overwrite").exit_code == 0
    assert json.loads((out / "config.json").read_text())["num_experts"] == 4
    assert {k: v for k, v in snapshot(tmp_path).items() if not k.startswith("out")} == neighbours


def test_without_overwrite_an_existing_target_is_never_touched(cli, model, plan_file, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.txt").write_text("mine")
    before = snapshot(tmp_path)
    result = cli("extract", model, "--plan", plan_file, "--out", out)
    one_line_error(result, "output error:", "already exists; pass --overwrite")
    assert snapshot(tmp_path) == before


def test_a_run_never_writes_into_a_folder_it_did_not_make(cli, source_model, tmp_path):
    work = tmp_path / "project"
    work.mkdir()
    (work / "report.md").write_text("my own report")  # a name the run would write
    recipe = {"name": "r", "model": str(source_model), "calibration": {"sources": ["builtin:math:train"]}, "budgets": [0.5]}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    before = snapshot(tmp_path)
    result = cli("run", tmp_path / "recipe.yaml", "--out", work)
    one_line_error(result, "output error:", "is not a run folder emo-prune made")
    assert snapshot(tmp_path) == before


def test_planted_symlinks_are_never_followed(cli, model, plan_file, tmp_path, monkeypatch):
    """Where the temporary file of a plan or a profile used to go (`.NAME.PID.tmp`), and at the lock file,
    a symlink to a victim is planted; every write goes around it and the victim keeps its bytes."""
    victim = tmp_path / "victim.txt"
    victim.write_text("do not touch")
    out_dir = tmp_path / "outputs"
    out_dir.mkdir()
    pid = os.getpid()  # the CLI runs in this process
    for name in ("plan.json", "profile.safetensors"):
        (out_dir / f".{name}.{pid}.tmp").symlink_to(victim)
    (out_dir / ".build.emo-prune-lock").symlink_to(victim)
    result = cli("select", model, "--keep", "0.5", "--method", "random", "--out", out_dir / "plan.json")
    assert result.exit_code == 0, result.output
    result = cli(
        "profile", model, "--calib", "builtin:math:train", "--max-tokens", "200", "--out", out_dir / "profile.safetensors"
    )
    assert result.exit_code == 0, result.output
    result = cli("extract", model, "--plan", plan_file, "--out", out_dir / "build")
    one_line_error(result, "output error:", "is a symlink; refusing to follow it")
    assert victim.read_text() == "do not touch" and not (out_dir / "build").exists()
    for name in ("plan.json", "profile.safetensors"):
        assert (out_dir / f".{name}.{pid}.tmp").is_symlink()


def test_a_symlinked_target_is_refused(cli, model, plan_file, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "out").symlink_to(elsewhere)
    before = snapshot(tmp_path)
    result = cli("extract", model, "--plan", plan_file, "--out", tmp_path / "out", "--overwrite")
    one_line_error(result, "output error:", "is a symlink")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("what", ["plan", "profile"])
def test_existing_files_of_another_kind_are_not_replaced(cli, model, tmp_path, what):
    target = tmp_path / ("x.json" if what == "plan" else "x.safetensors")
    target.write_text("not emo-prune's")
    before = snapshot(tmp_path)
    if what == "plan":
        result = cli("select", model, "--keep", "0.5", "--method", "random", "--out", target)
        one_line_error(result, "exists and is not a plan file")
    else:
        result = cli("profile", model, "--calib", "builtin:math:train", "--out", target)
        one_line_error(result, "exists and is not an emo-prune profile")  # --overwrite would not help either
    assert snapshot(tmp_path) == before


def test_overwrite_of_a_file_replaces_only_an_emo_prune_profile(cli, source_model, tmp_path):
    target = tmp_path / "notes.safetensors"
    target.write_text("not a profile")
    before = snapshot(tmp_path)
    result = cli("profile", source_model, "--calib", "builtin:math:train", "--out", target, "--overwrite")
    one_line_error(result, "output error:", "is not an emo-prune profile")
    assert snapshot(tmp_path) == before


def test_eval_never_replaces_a_file_it_did_not_write(cli, source_model, tmp_path):
    (tmp_path / "results.md").write_text("my notes")
    before = snapshot(tmp_path)
    result = cli("eval", source_model, "--tasks", "emo_ppl_math", "--out", tmp_path / "results.json")
    one_line_error(result, "eval error:", "does not belong to emo-prune results")
    assert snapshot(tmp_path) == before
