"""The workspace (emo_prune/workspace/state.py): the user's commands exactly as typed, explicit arguments
winning, and a hostile emo-prune.json refused like a hostile plan (one line, nothing written)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from emo_prune.workspace.state import MAX_BYTES, STATE_FILE
from tests.hardening.hardening_helpers import one_line_error, snapshot

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "quickstart.yaml"


def _typed(cli, folder: Path) -> dict[str, str]:
    """`profile --domain code`, `extract --keep 0.125`, `eval`, exactly as a user types them in `folder`."""
    profile = cli("profile", "--domain", "code")
    assert profile.exit_code == 0, profile.output
    assert "model: builtin:emo-small (this workspace's" in profile.stderr
    assert "profiled code 30k tokens in" in profile.stderr  # the one default budget, and its time
    assert (folder / "emo-small-code.profile.safetensors").is_file()
    extract = cli("extract", "--keep", "0.125")
    assert extract.exit_code == 0, extract.output
    assert "profile: emo-small-code.profile.safetensors (this workspace's newest covering code" in extract.stderr
    assert "no --profile given" not in extract.stderr  # the workspace's profile, not a second profiling
    build = folder / "emo-small-code-12.5pct"
    assert json.loads((build / "emo_prune.json").read_text())["domains"] == ["code"]
    scores = cli("eval")
    assert scores.exit_code == 0, scores.output
    assert "model: emo-small-code-12.5pct (this workspace's newest build, cut from builtin:emo-small" in scores.stderr
    assert "baseline: builtin:emo-small" in scores.stderr
    result = json.loads((folder / "emo-small-code-12.5pct-eval.json").read_text())
    assert "emo_ppl_code" in json.dumps(result)
    status = cli("status", "--json")
    assert status.exit_code == 0, status.output
    return json.loads(status.stdout)


def test_the_three_commands_as_typed_after_init(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    init = cli("init", "builtin:emo-small")
    assert init.exit_code == 0, init.output
    assert json.loads((tmp_path / STATE_FILE).read_text())["model"] == "builtin:emo-small"
    state = _typed(cli, tmp_path)
    assert [p["path"] for p in state["profiles"]] == ["emo-small-code.profile.safetensors"]
    assert [(b["path"], b["source"]) for b in state["builds"]] == [("emo-small-code-12.5pct", "builtin:emo-small")]


def test_the_three_commands_as_typed_in_a_folder_holding_a_recipe(cli, tmp_path, monkeypatch):
    shutil.copy(RECIPE, tmp_path / "my-recipe.yaml")
    monkeypatch.chdir(tmp_path)
    status = cli("status")
    assert status.exit_code == 0 and "from recipe my-recipe.yaml" in status.stdout, status.output
    state = _typed(cli, tmp_path)
    assert state["from"] == STATE_FILE  # the first output recorded the recipe's model
    assert [b["path"] for b in state["builds"]] == ["emo-small-code-12.5pct"]


def test_explicit_arguments_win(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli("init", "builtin:emo-small").exit_code == 0
    # an explicit MODEL: profiled, written, and not recorded as this workspace's (another model)
    other = cli("profile", "builtin:tiny-emo", "--domain", "code", "--max-tokens", "300")
    assert other.exit_code == 0, other.output
    assert "this workspace's" not in other.stderr and (tmp_path / "tiny-emo-code.profile.safetensors").is_file()
    assert json.loads((tmp_path / STATE_FILE).read_text())["profiles"] == []
    mine = cli("profile", "--domain", "code", "--max-tokens", "300")
    assert mine.exit_code == 0, mine.output
    # an explicit --profile wins over the workspace's newest
    explicit = cli("profile", "--domain", "code", "--max-tokens", "200", "--out", "explicit.profile.safetensors")
    assert explicit.exit_code == 0, explicit.output
    build = cli("extract", "--keep", "0.25", "--profile", "emo-small-code.profile.safetensors", "--out", "b25")
    assert build.exit_code == 0, build.output
    assert "this workspace's newest" not in build.stderr
    # an explicit MODEL for eval: a missing folder is named, not replaced by the workspace's build
    one_line_error(cli("eval", "no-such-build"), "no-such-build")


def test_select_as_typed_uses_the_newest_profile_and_records_its_plan(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli("init", "builtin:tiny-emo").exit_code == 0
    profile = cli("profile", "--domain", "code", "--max-tokens", "2000")
    assert profile.exit_code == 0, profile.output
    select = cli("select", "--keep", "0.5", "--out", "code50.json")
    assert select.exit_code == 0, select.output
    assert "model: builtin:tiny-emo (this workspace's" in select.stderr
    assert "profile: tiny-emo-code.profile.safetensors (this workspace's newest covering code" in select.stderr
    assert json.loads((tmp_path / "code50.json").read_text())["domains"] == ["code"]
    status = json.loads(cli("status", "--json").stdout)
    assert status["plans"] == [{"path": "code50.json", "domains": ["code"], "present": True}]
    # the plan is recorded in the state file, which an older state without "plans" still reads
    assert [p["path"] for p in json.loads((tmp_path / STATE_FILE).read_text())["plans"]] == ["code50.json"]


@pytest.mark.parametrize(
    "command",
    [["profile", "--domain", "code"], ["extract", "--keep", "0.125"], ["eval"], ["select", "--keep", "0.5", "--out", "p.json"]],
)
def test_no_workspace_and_no_model_is_one_line_saying_how(cli, tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    one_line_error(cli(*command), "no MODEL given", "emo-prune init MODEL")
    assert snapshot(tmp_path) == {}


# each hostile file: what it holds, and what the one line must name
HOSTILE = {
    "not json": (b"{model: builtin:emo-small", "is not JSON"),
    "model of the wrong type": (json.dumps({"format": 1, "model": 5}).encode(), "field model"),
    "unknown field": (json.dumps({"format": 1, "model": "builtin:emo-small", "run": "rm -rf /"}).encode(), "field run"),
    "profiles not a list": (json.dumps({"format": 1, "model": "builtin:emo-small", "profiles": "x"}).encode(), "field profiles"),
    "absolute path": (
        json.dumps(
            {"format": 1, "model": "builtin:emo-small", "profiles": [{"path": "/etc/passwd", "domains": ["code"]}]}
        ).encode(),
        "leaves the workspace folder",
    ),
    "path climbing out": (
        json.dumps(
            {"format": 1, "model": "builtin:emo-small", "builds": [{"path": "../../elsewhere", "source": "builtin:emo-small"}]}
        ).encode(),
        "leaves the workspace folder",
    ),
    "another format": (json.dumps({"format": 99, "model": "builtin:emo-small"}).encode(), "format 99"),
    "huge": (b" " * (MAX_BYTES + 1) + b"{}", "too large"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_workspace_file_is_refused(cli, tmp_path, monkeypatch, case):
    content, fragment = HOSTILE[case]
    (tmp_path / STATE_FILE).write_bytes(content)
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    for command in (["status"], ["profile", "--domain", "code"], ["extract", "--keep", "0.125"], ["eval"]):
        one_line_error(cli(*command), "workspace error", fragment)
    assert snapshot(tmp_path) == before  # nothing written, the file left as it was


def test_a_symlinked_workspace_file_or_entry_is_refused(cli, tmp_path, monkeypatch):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "state.json").write_text(json.dumps({"format": 1, "model": "builtin:emo-small"}))
    folder = tmp_path / "ws"
    folder.mkdir()
    os.symlink(outside / "state.json", folder / STATE_FILE)
    monkeypatch.chdir(folder)
    one_line_error(cli("status"), "is a symlink")
    (folder / STATE_FILE).unlink()
    os.symlink(outside, folder / "link")
    entry = {"path": "link/p.safetensors", "domains": ["code"]}
    (folder / STATE_FILE).write_text(json.dumps({"format": 1, "model": "builtin:emo-small", "profiles": [entry]}))
    one_line_error(cli("extract", "--keep", "0.125"), "through a symlink")
    assert sorted(p.name for p in outside.iterdir()) == ["state.json"]


def test_init_refuses_a_model_that_is_not_there_and_writes_nothing(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    one_line_error(cli("init", "emo-small-typo-folder"), "emo-small-typo-folder")
    assert snapshot(tmp_path) == {}
    assert cli("init", "builtin:emo-small").exit_code == 0
    one_line_error(cli("init", "builtin:tiny-emo"), "already names builtin:emo-small", "--overwrite")
    assert cli("init", "builtin:tiny-emo", "--overwrite").exit_code == 0
    assert json.loads((tmp_path / STATE_FILE).read_text())["model"] == "builtin:tiny-emo"


def test_the_first_command_given_a_model_starts_the_workspace(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = cli("profile", "builtin:tiny-emo", "--domain", "code", "--max-tokens", "300")
    assert first.exit_code == 0, first.output
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert state["model"] == "builtin:tiny-emo" and state["profiles"][0]["domains"] == ["code"]
    build = cli("extract", "--keep", "0.25")  # no MODEL, no --domain, no --profile: all from the workspace
    assert build.exit_code == 0, build.output
    assert "profile: tiny-emo-code.profile.safetensors" in build.stderr
    listed = cli("ls", "--json")  # `ls` is `status`
    assert [b["path"] for b in json.loads(listed.stdout)["builds"]] == ["tiny-emo-code-25pct"]
    # an output elsewhere is not recorded, and a folder with no MODEL recorded gets no file
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert (
        cli(
            "profile", "builtin:tiny-emo", "--domain", "code", "--max-tokens", "300", "--out", tmp_path / "x.profile.safetensors"
        ).exit_code
        == 0
    )
    assert not (elsewhere / STATE_FILE).exists()
