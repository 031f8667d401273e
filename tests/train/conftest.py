"""Fixtures of the fine-tuning tests: the tiny EMO model, a build of it, and small training files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from finetune_helpers import KEPT


@pytest.fixture(scope="session")
def full(tiny) -> Path:
    """EMO, 2 layers x 8 experts (expert 7 shared), top-2, per-expert keys. Read-only."""
    return tiny("emo")


@pytest.fixture(scope="session")
def build(full, tmp_path_factory) -> Path:
    """`full` cut to KEPT by `extract`. Read-only."""
    from emo_prune.extract import extract
    from emo_prune.select import Plan

    out = tmp_path_factory.mktemp("build") / "build"
    extract(full, Plan(KEPT), out)
    return out


@pytest.fixture(scope="session")
def data(tmp_path_factory) -> dict[str, Path]:
    """pairs.jsonl: {"context", "answer"} records; text.jsonl: plain {"text"} documents."""
    root = tmp_path_factory.mktemp("data")
    pairs = [{"context": f"Question: what is {i} plus {i + 2}?", "answer": f" The answer is {2 * i + 2}."} for i in range(16)]
    texts = [{"text": f"def add_{i}(x):\n    return x + {i}\n"} for i in range(16)]
    (root / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pairs))
    (root / "text.jsonl").write_text("".join(json.dumps(r) + "\n" for r in texts))
    return {"pairs": root / "pairs.jsonl", "text": root / "text.jsonl"}
