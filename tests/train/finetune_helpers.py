"""Helpers of the fine-tuning tests (importable: this folder is on sys.path under pytest)."""

from __future__ import annotations

from pathlib import Path

import torch

KEPT = [[0, 2, 5, 7], [1, 3, 4, 7]]  # the `build` fixture's plan: 3 routed experts + the shared tail expert 7, of 8
SMALL = dict(batch_size=4, seq_len=32, lr=1e-2, warmup=0.0)  # a few steps that visibly move a tiny model


def params(folder: Path) -> dict[str, torch.Tensor]:
    """Every parameter of the model in `folder` as loaded in memory (fused experts), float32."""
    from emo_prune.models.loading import load_whole

    return {n: p.detach().clone() for n, p in load_whole(folder, torch.float32).named_parameters()}
