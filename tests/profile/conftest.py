"""Tiny models and calibration documents shared by the profile tests (written once per session)."""

from __future__ import annotations

import pytest

from emo_prune.calib import Document

# family -> write_tiny_model sizes; each case covers a routing path or a layout the profiler must handle
TINY = {
    # EMO: shared tail expert (split softmax), per-layer counts with a dense layer, fused on-disk layout
    "emo": dict(layers=3, experts=8, top_k=3, shared=1, experts_per_layer=[8, 0, 6], storage="fused"),
    # OLMoE: plain softmax top-k, no renormalization, per-expert on-disk keys
    "olmoe": dict(layers=2, experts=8, top_k=2),
    # Mixtral: top-k weights always renormalized, block_sparse_moe on-disk names
    "mixtral": dict(layers=2, experts=6, top_k=2),
    # Qwen2-MoE: separate sigmoid-gated shared expert (not profiled), a dense mlp_only layer
    "qwen2_moe": dict(layers=3, experts=8, top_k=2, dense_layers=[1]),
    # Qwen3-MoE: norm_topk_prob=True
    "qwen3_moe": dict(layers=2, experts=8, top_k=3, norm_topk_prob=True),
}


@pytest.fixture(scope="session")
def tiny_models(tiny):
    def get(family: str):
        sizes = dict(TINY[family])
        return tiny(family, seed=3, hidden=32, expert_width=16, **sizes)

    return get


@pytest.fixture(scope="session")
def calib_docs():
    """Two domains; lengths chosen so some documents span several 16-token windows and straddle batches."""
    code = [
        "def add(a, b):\n    return a + b\n",
        "class Expert:\n    def forward(self, x):\n        return self.down(silu(self.gate(x)) * self.up(x))\n",
        "for i in range(10):\n    print(i)\n",
        "import os\nprint(os.getcwd())\n" * 3,
        "x = [i * i for i in range(100) if i % 3 == 0]\n",
    ]
    math = [
        "Question: What is 17 + 25? Answer: 42.",
        "Question: Solve 3x + 4 = 19. Answer: 3x = 15, so x = 5. The answer is x = 5.",
        "12 * 11 = 132",
        "Question: Simplify (8 - 3) * 6. Answer: 8 - 3 = 5, and 5 * 6 = 30. The answer is 30. " * 2,
    ]
    return [Document(t, "code", "test") for t in code] + [Document(t, "math", "test") for t in math]
