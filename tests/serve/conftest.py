"""Tiny EMO checkpoints for the pool tests (built from configs, nothing downloaded)."""

from __future__ import annotations

from pathlib import Path

import pytest

from emo_prune.testing import write_tiny_model

# what each checkpoint covers; 16 experts, top-4, so a pool of 8 leaves a real choice
VARIANTS = {
    "shared": dict(shared=1),  # the released path: shared tail expert, split softmax
    "always_active": dict(shared=0, always_active=[2]),  # explicit always-on id, one softmax
    "plain": dict(shared=0),  # plain top-k (no fixed experts)
    "fused": dict(shared=1, storage="fused"),  # experts stored fused [E, 2I, H] on disk
}


@pytest.fixture(scope="session")
def pool_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pool-models")
    return {
        name: write_tiny_model(root / name, "emo", layers=3, experts=16, top_k=4, expert_width=16, **sizes)
        for name, sizes in VARIANTS.items()
    }
