"""Fixtures of the pipeline tests: a small EMO model, a fast recipe for it, a private hash/model cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml


@pytest.fixture(scope="session")
def small_emo(tiny) -> Path:
    """16 experts (1 shared), top-2: keep 0.25 -> 4 per layer, keep 0.125 -> 2 = top-k."""
    return tiny("emo", layers=2, hidden=64, experts=16, top_k=2)


@pytest.fixture
def write_recipe(tmp_path: Path):
    def write(data: dict, name: str = "recipe.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write
