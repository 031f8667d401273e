"""Every writer, one rule: locked, never replacing without --overwrite (nor a stranger's file with it),
never writing through a symlink planted inside an output folder, never promoting a temporary folder it
did not make, cleaning what killed writers left, and giving outputs the modes the umask says."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hardening_helpers import one_line_error, snapshot

from emo_prune.errors import OutputError
from emo_prune.io.atomic import AtomicFolder, atomic_write_text, commit_file, temp_file
from emo_prune.io.confine import confined
from emo_prune.io.lock import FolderLock
from emo_prune.io.ownership import TMP_TAG, claim_folder, write_owner_marker


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped): what a kill -9 leaves behind."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def recipe_file(tmp_path: Path, model: Path, **extra) -> Path:
    recipe = {"name": "r", "model": str(model), "calibration": {"sources": ["builtin:math:train"]}, "budgets": [0.5], **extra}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


# ---- 2. a resumed run never writes through a symlink planted inside its folder ---------------------
@pytest.mark.parametrize("planted", [".steps", "plans", "verify", "eval", "builds"])
def test_a_run_refuses_a_symlinked_subfolder(cli, source_model, tmp_path, planted, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    claim_folder(run, "run")  # a run folder emo-prune made, as a first run leaves it
    user = tmp_path / "user-folder"
    user.mkdir()
    (user / "25pct.json").write_text("the user's own file")
    (run / planted).symlink_to(user, target_is_directory=True)
    monkeypatch.setattr("emo_prune.profile.runner.profile_to_file", _never("the profile step"))
    recipe = recipe_file(tmp_path, source_model)
    before = snapshot(tmp_path)
    result = cli("run", recipe, "--out", run)
    one_line_error(result, "output error:", f"{run / planted} is a symlink inside the output folder")
    assert snapshot(tmp_path) == before


def test_writes_inside_a_confined_folder_go_through_real_folders_only(tmp_path):
    root, user = tmp_path / "run", tmp_path / "user"
    root.mkdir()
    user.mkdir()
    (root / "plans").symlink_to(user)
    with confined(root):
        atomic_write_text(root / "deep" / "er" / "ok.txt", "made level by level")  # missing folders are made
        with pytest.raises(OutputError, match="is a symlink inside the output folder"):
            atomic_write_text(root / "plans" / "p.json", "{}")
        (root / "file").write_text("x")
        with pytest.raises(OutputError, match="is not a folder"):
            atomic_write_text(root / "file" / "p.json", "{}")
    assert (root / "deep" / "er" / "ok.txt").read_text() == "made level by level"
    assert list(user.iterdir()) == []
    atomic_write_text(root / "plans" / "p.json", "{}")  # outside `confined`, the user's paths are theirs to name
    assert (user / "p.json").exists()


def _never(what: str):
    def fail(*_args, **_kwargs):
        raise AssertionError(f"{what} ran before the refusal")

    return fail


# ---- 4. locks, rename-without-replace, temporary names ------------------------------------------
def test_every_file_writer_fails_at_once_while_another_holds_the_target(cli, model, plan_file, tmp_path, monkeypatch):
    monkeypatch.setattr("emo_prune.profile.runner.profile_model", _never("profiling"))
    monkeypatch.setattr("emo_prune.serve.index_build.build_index", _never("indexing"))
    monkeypatch.setattr("emo_prune.eval.harness.evaluate", _never("evaluating"))
    cases = {
        "p.safetensors": ("profile", model, "--calib", "builtin:math:train"),
        "i.safetensors": ("pool-index", model, "--calib", "math=builtin:math:train", "--max-pairs", "2"),
        "r.json": ("eval", model, "--tasks", "emo_ppl_math", "--limit", "1"),
        "f.gguf": ("export", model),
        "plan2.json": ("select", model, "--keep", "0.5", "--method", "random"),
    }
    for name, args in cases.items():
        target = tmp_path / name
        with FolderLock(target):
            before = snapshot(tmp_path)
            result = cli(*args, "--out", target)
            one_line_error(result, "is being written by another emo-prune process")
            assert snapshot(tmp_path) == before, name


def test_the_last_rename_never_replaces_a_target_that_appeared(tmp_path):
    target = tmp_path / "plan.json"
    tmp = temp_file(target)
    tmp.write_text("mine")
    target.write_text("theirs, written while we worked")
    with pytest.raises(OutputError, match="appeared while emo-prune was writing it"):
        commit_file(tmp, target, replace=False)
    assert target.read_text() == "theirs, written while we worked"


def test_a_folder_that_appeared_meanwhile_is_not_replaced(tmp_path):
    target = tmp_path / "build"
    with pytest.raises(OutputError, match="appeared while emo-prune was writing it"), AtomicFolder(target) as tmp:
        (tmp / "config.json").write_text("{}")
        target.mkdir()  # another process's output, made after our checks
        (target / "theirs.txt").write_text("keep me")
    assert [p.name for p in target.iterdir()] == ["theirs.txt"]
    assert not [p for p in tmp_path.iterdir() if TMP_TAG in p.name]


@pytest.mark.parametrize("tag", ["", "old-"])
def test_a_planted_temporary_folder_is_never_renamed_into_the_target(cli, model, plan_file, tmp_path, tag):
    out = tmp_path / "out"
    planted = tmp_path / f".out{TMP_TAG}{tag}{dead_pid()}.forged"
    planted.mkdir()
    (planted / "config.json").write_text('{"planted": true}')
    write_owner_marker(planted, "build")  # a forged, intact marker
    result = cli("extract", model, "--plan", plan_file, "--out", out)
    assert result.exit_code == 0, result.output
    assert "planted" not in (out / "config.json").read_text()
    assert not planted.exists()  # emo-prune's own kind of leftover: cleaned, never promoted


def test_temp_files_of_a_killed_export_are_removed_by_the_next_one(cli, source_model, tmp_path):
    out = tmp_path / "m.gguf"
    stale = tmp_path / f".m.gguf{TMP_TAG}{dead_pid()}.f16abc.tmp"
    stale.write_bytes(b"\0" * 1024)  # what a kill -9 mid-export leaves
    alive = tmp_path / f".m.gguf{TMP_TAG}{os.getpid()}.f16xyz.tmp"
    alive.write_bytes(b"a live writer's")
    result = cli("export", source_model, "--out", out)
    assert result.exit_code == 0, result.output
    assert not stale.exists() and alive.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, "m.gguf"])


# ---- 7. --overwrite, and only over emo-prune's own files ----------------------------------------
def test_select_does_not_replace_a_plan_without_overwrite(cli, model, tmp_path):
    target = tmp_path / "p.json"
    assert cli("select", model, "--keep", "0.5", "--method", "random", "--out", target).exit_code == 0
    before = snapshot(tmp_path)
    result = cli("select", model, "--keep", "0.5", "--method", "random", "--seed", "3", "--out", target)
    one_line_error(result, "plan error:", f"{target} exists; pass --overwrite")
    assert snapshot(tmp_path) == before
    assert (
        cli("select", model, "--keep", "0.5", "--method", "random", "--seed", "3", "--out", target, "--overwrite").exit_code == 0
    )
    assert json.loads(target.read_text())["seed"] == 3


def test_export_overwrite_replaces_only_a_gguf_file_emo_prune_wrote(cli, source_model, tmp_path):
    import gguf

    theirs = tmp_path / "theirs.gguf"
    writer = gguf.GGUFWriter(theirs, "llama")  # a real GGUF file, but not one emo-prune wrote
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    notes = tmp_path / "notes.gguf"
    notes.write_text("not a GGUF file at all")
    before = snapshot(tmp_path)
    for target in (theirs, notes):
        result = cli("export", source_model, "--out", target, "--overwrite")
        one_line_error(result, "output error:", f"{target} exists and is not an emo-prune GGUF file")
    assert snapshot(tmp_path) == before
    ours = tmp_path / "ours.gguf"
    assert cli("export", source_model, "--out", ours).exit_code == 0
    result = cli("export", source_model, "--out", ours)
    one_line_error(result, f"{ours} exists; pass --overwrite")
    assert cli("export", source_model, "--out", ours, "--overwrite").exit_code == 0


def test_eval_does_not_replace_results_without_overwrite(cli, tmp_path, monkeypatch):
    target = tmp_path / "r.json"
    target.write_text(json.dumps({"format": 1, "model": {}, "comparison": []}))  # emo-prune's results
    monkeypatch.setattr("emo_prune.eval.harness.evaluate", _never("evaluating"))
    before = snapshot(tmp_path)
    result = cli("eval", "builtin:emo-small", "--tasks", "emo_ppl_math", "--out", target)
    one_line_error(result, "eval error:", f"{target} exists; pass --overwrite")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_follow_the_umask(cli, model, plan_file, tmp_path, umask):
    previous = os.umask(umask)
    try:
        assert cli("extract", model, "--plan", plan_file, "--out", tmp_path / "b").exit_code == 0
        assert cli("select", model, "--keep", "0.5", "--method", "random", "--out", tmp_path / "p.json").exit_code == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o777 & ~umask
    assert stat.S_IMODE((tmp_path / "b" / "config.json").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "p.json").stat().st_mode) == 0o666 & ~umask


# ---- weak cases: budgets before profiling, verify --plan, unforeseen disk errors -----------------
def test_an_impossible_budget_is_refused_before_profiling(cli, model, tmp_path, monkeypatch):
    monkeypatch.setattr("emo_prune.profile.runner.profile_model", _never("profiling"))
    recipe = recipe_file(tmp_path, model, budgets=[0.1])
    before = snapshot(tmp_path)
    result = cli("extract", model, "--keep", "0.1", "--domain", "code", "--out", tmp_path / "b")
    one_line_error(result, "plan error:", "fewer than top-k")
    result = cli("run", recipe, "--out", tmp_path / "run")
    one_line_error(result, "plan error:", "fewer than top-k")
    assert snapshot(tmp_path) == before


def test_an_existing_output_is_refused_before_profiling(cli, model, tmp_path, monkeypatch):
    monkeypatch.setattr("emo_prune.profile.runner.profile_model", _never("profiling"))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "mine.txt").write_text("keep")
    before = snapshot(tmp_path)
    result = cli("extract", model, "--keep", "0.5", "--domain", "code", "--out", tmp_path / "b")
    one_line_error(result, "output error:", "already exists; pass --overwrite")
    assert snapshot(tmp_path) == before


def test_verify_takes_the_plan_of_a_folder_without_a_manifest(cli, model, plan_file, tmp_path):
    build = tmp_path / "b"
    assert cli("extract", model, "--plan", plan_file, "--out", build).exit_code == 0
    bare = tmp_path / "bare"
    bare.mkdir()
    for path in build.iterdir():
        if path.name not in ("emo_prune.json", "pruning_metadata.json"):
            (bare / path.name).write_bytes(path.read_bytes())
    one_line_error(cli("verify", model, bare, "--prompts", "1"), "plan error:", "pass --plan PLAN")
    result = cli("verify", model, bare, "--prompts", "1", "--plan", plan_file)
    assert result.exit_code == 0, result.output


def test_a_name_too_long_is_named_not_an_internal_error(cli, source_model, tmp_path):
    target = tmp_path / ("x" * 300 + ".gguf")
    result = cli("export", source_model, "--out", target)
    line = one_line_error(result, "too long")
    assert "internal error" not in line


def test_a_file_in_the_way_of_the_output_folder_is_named(cli, source_model, tmp_path):
    (tmp_path / "notes").write_text("a file, not a folder")
    result = cli("export", source_model, "--out", tmp_path / "notes" / "m.gguf")
    line = one_line_error(result, str(tmp_path / "notes"))
    assert "internal error" not in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_named(cli, source_model, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        result = cli("export", source_model, "--out", folder / "m.gguf")
        line = one_line_error(result, str(folder))
        assert "internal error" not in line
    finally:
        folder.chmod(0o755)
