"""Tiny models of every exportable shape, written once per session (read-only for tests)."""

from __future__ import annotations

from pathlib import Path

import pytest
from gguf_cases import EXPORTABLE


@pytest.fixture(scope="session")
def export_zoo(tiny) -> dict[str, Path]:
    return {name: tiny(family, seed=3, **sizes) for name, (family, sizes) in EXPORTABLE.items()}
