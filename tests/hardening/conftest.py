"""Fixtures of the hardening tests: a small sharded EMO model written once, copied per test when a test changes it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def source_model(tiny) -> Path:
    """EMO, 2 layers x 8 experts (1 shared), top-2, per-expert keys, two shards. Read-only: copy it to change it."""
    return tiny("emo", max_shard_size="200kB")


@pytest.fixture
def model(source_model: Path, tmp_path: Path) -> Path:
    """A private copy of `source_model` under tmp_path/model, free to corrupt."""
    return Path(shutil.copytree(source_model, tmp_path / "model"))


@pytest.fixture
def plan_file(tmp_path: Path) -> Path:
    """A hand-written plan for `model`: keep experts 1, 4, 6 and the shared 7 in both layers."""
    from emo_prune.select import Plan

    return Plan([[1, 4, 6, 7], [1, 4, 6, 7]]).save(tmp_path / "plan.json")
