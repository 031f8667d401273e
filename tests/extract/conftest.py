"""Fixtures of the select / extract / verify tests: tiny checkpoints written once, a private hash cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    """tiny(family, storage=..., **sizes) -> a written checkpoint, each distinct request written once. Read-only."""
    from emo_prune.testing import write_tiny_model

    root = tmp_path_factory.mktemp("tiny")
    made: dict[str, Path] = {}

    def make(family: str = "emo", storage: str = "per_expert", seed: int = 0, **sizes: Any) -> Path:
        key = json.dumps([family, storage, seed, sizes], sort_keys=True)
        if key not in made:
            made[key] = write_tiny_model(root / f"m{len(made)}-{family}", family, seed=seed, storage=storage, **sizes)
        return made[key]

    return make
