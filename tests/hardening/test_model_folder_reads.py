"""Reads of what a model folder names (config, generation config, tokenizer files, chat templates) stay inside it.

Each refusal: exit 1, one line naming the file, nothing outside the target changed, and a sentinel file
outside the model folder never opened by Python (`open`, `io.open`, `os.open` are watched). The sentinel
is a working copy of the file it replaces, so a command that followed the link would succeed: the exit
code alone shows that the Rust tokenizer (which opens files without Python) did not read it either.
"""

from __future__ import annotations

import builtins
import io
import os
import shutil
from pathlib import Path

import pytest
from hardening_helpers import hf_snapshot, one_line_error, snapshot

from emo_prune.select import Plan

PROFILE = ("profile", "MODEL", "--calib", "builtin:math:train", "--max-tokens", "200", "--out", "OUT/profile.safetensors")
COMMANDS = {
    "generate": ("generate", "MODEL", "--prompt", "def add(a, b):", "--max-new-tokens", "2"),
    "profile": PROFILE,
    "verify": ("verify", "MODEL", "OUT/build", "--prompts", "1"),
    "eval": ("eval", "MODEL", "--tasks", "emo_ppl_math", "--limit", "1", "--out", "OUT/results.json"),
}


@pytest.fixture
def watched(monkeypatch):
    """watched(path) -> the list of every Python-level open of `path` from now on (followed links included)."""
    opened: list[str] = []
    sentinels: list[str] = []

    def hits(file: object) -> bool:
        if isinstance(file, int):
            return False
        return os.path.realpath(os.fspath(file)) in sentinels  # type: ignore[arg-type]

    real_open, real_io_open, real_os_open = builtins.open, io.open, os.open

    def guarded_open(file, *args, **kwargs):
        if hits(file):
            opened.append(f"open({file})")
        return real_open(file, *args, **kwargs)

    def guarded_io_open(file, *args, **kwargs):
        if hits(file):
            opened.append(f"io.open({file})")
        return real_io_open(file, *args, **kwargs)

    def guarded_os_open(path, *args, **kwargs):
        if hits(path):
            opened.append(f"os.open({path})")
        return real_os_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(io, "open", guarded_io_open)
    monkeypatch.setattr(os, "open", guarded_os_open)

    def watch(path: Path) -> list[str]:
        sentinels.append(os.path.realpath(path))
        return opened

    return watch


def _args(command: str, model: Path, out: Path) -> list[str]:
    return [str(model) if a == "MODEL" else a.replace("OUT", str(out)) for a in COMMANDS[command]]


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("name", ["tokenizer.json", "tokenizer_config.json"])
def test_tokenizer_files_symlinked_outside_are_never_read(cli, model, tmp_path, watched, command, name):
    out = tmp_path / "out"
    out.mkdir()
    if command == "verify":  # a clean build first; then the original's tokenizer file is swapped for the link
        plan = Plan([[1, 4, 6, 7], [1, 4, 6, 7]]).save(tmp_path / "plan.json")
        assert cli("extract", model, "--plan", plan, "--out", out / "build").exit_code == 0
    sentinel = tmp_path / f"sentinel-{name}"
    shutil.move(model / name, sentinel)  # a working copy: following the link would succeed
    (model / name).symlink_to(sentinel)
    before = snapshot(tmp_path)  # reads the sentinel itself: watched only from here on
    opened = watched(sentinel)
    result = cli(*_args(command, model, out))
    one_line_error(result, "unsafe path:", f"{name!r}", str(sentinel))
    assert opened == []  # before the snapshot below reads it
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "name",
    ["special_tokens_map.json", "chat_template.jinja", "vocab.json", "generation_config.json", "added_tokens.json"],
)
def test_any_file_a_loader_may_read_is_checked(cli, model, tmp_path, watched, name):
    """transformers picks tokenizer files by class; whichever it looks for, an outside link is refused first."""
    sentinel = tmp_path / f"sentinel-{name}"
    sentinel.write_text("{}" if name.endswith(".json") else "{{ messages }}")
    (model / name).unlink(missing_ok=True)
    (model / name).symlink_to(sentinel)
    before = snapshot(tmp_path)  # reads the sentinel itself: watched only from here on
    opened = watched(sentinel)
    result = cli(*_args("generate", model, tmp_path))
    one_line_error(result, "unsafe path:", f"{name!r}")
    assert opened == []  # before the snapshot below reads it
    assert snapshot(tmp_path) == before


def test_a_symlink_to_etc_passwd_is_refused_before_json_parsing(cli, model, tmp_path):
    (model / "tokenizer.json").unlink()
    (model / "tokenizer.json").symlink_to("/etc/passwd")
    before = snapshot(tmp_path)
    result = cli(*_args("generate", model, tmp_path))
    line = one_line_error(result, "unsafe path:", "'tokenizer.json'", "/etc/passwd")
    assert "JSONDecodeError" not in line and "internal error" not in line
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", ["generate", "profile", "extract", "export"])
@pytest.mark.parametrize("name", ["tokenizer.json", "tokenizer_config.json"])
def test_a_fifo_in_the_model_folder_is_one_line_and_never_blocks(cli, model, tmp_path, command, name):
    """A reader of a FIFO with no writer waits forever: it is refused from its file type, never opened for reading."""
    (model / name).unlink()
    os.mkfifo(model / name)
    before = snapshot(tmp_path)
    if command == "extract":
        plan = Plan([[1, 4, 6, 7], [1, 4, 6, 7]]).save(tmp_path / "plan.json")
        before = snapshot(tmp_path)
        result = cli("extract", model, "--plan", plan, "--out", tmp_path / "build")
    elif command == "export":
        result = cli("export", model, "--dtype", "f16", "--out", tmp_path / "x.gguf")
    else:
        result = cli(*_args(command, model, tmp_path))
    one_line_error(result, "checkpoint error:", f"{model / name}", "is a FIFO")
    assert snapshot(tmp_path) == before


def test_a_fifo_as_config_or_shard_is_refused(cli, model, tmp_path):
    (model / "config.json").unlink()
    os.mkfifo(model / "config.json")
    result = cli("inspect", model)
    one_line_error(result, "checkpoint error:", "config.json", "is a FIFO")


@pytest.mark.parametrize("command", ["generate", "profile", "eval"])
def test_a_missing_model_folder_is_named(cli, tmp_path, command):
    missing = tmp_path / "nonexistent" / "x"
    result = cli(*_args(command, missing, tmp_path))
    line = one_line_error(result, f"model folder not found: {missing}")
    assert "Repo id" not in line


def test_hf_cache_snapshot_links_into_blobs_load_the_tokenizer(model, tmp_path):
    """HF_HOME/hub/models--org--name/snapshots/<rev>/<file> -> ../../blobs/<sha>: the one outside target allowed."""
    from emo_prune.models.loading import load_tokenizer

    snap = hf_snapshot(model, tmp_path / "hub")
    tokenizer = load_tokenizer(snap)
    assert tokenizer("def add(a, b):")["input_ids"] == load_tokenizer(model)("def add(a, b):")["input_ids"]
    assert tokenizer.name_or_path == str(snap)


def test_a_fifo_as_a_builds_coverage_side_file_is_refused(cli, model, plan_file, tmp_path):
    """The build's dropped-router side file is read by safetensors (Rust): its type is checked first."""
    from emo_prune.extract.coverage import SIDE_FILE

    build = tmp_path / "build"
    assert cli("extract", model, "--plan", plan_file, "--out", build).exit_code == 0
    (build / SIDE_FILE).unlink()
    os.mkfifo(build / SIDE_FILE)
    before = snapshot(tmp_path)
    result = cli("generate", build, "--prompt", "def add(a, b):", "--max-new-tokens", "2")
    one_line_error(result, "checkpoint error:", str(build / SIDE_FILE), "is a FIFO")
    assert snapshot(tmp_path) == before
