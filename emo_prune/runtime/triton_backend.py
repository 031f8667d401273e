"""`emo_triton`: the experts forward on the Triton kernels of `emo_prune_kernels` (kernels/).

Shapes as in reference.py: x [T, H], stack (layout.ExpertStack) [E, 2I, H] + [E, H, I], ids [T, k], weights [T, k]
-> y [T, H]. This file knows the kernels' public entry points only (`fused_experts`, `route_topk`,
`can_run_on`); tiles, grids and paths live in kernels/. The kernels are imported on first use, so
emo_prune imports (and emo_cpu runs) on machines without triton.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType

import torch

from emo_prune.errors import RuntimeSetupError
from emo_prune.runtime.layout import ExpertStack, interface_entry


@functools.cache
def _load(module: str) -> ModuleType | None:
    """None when triton itself cannot be imported; errors of the kernels themselves propagate."""
    try:
        import triton  # noqa: F401
    except (ImportError, RuntimeError):  # not installed, or broken on this platform
        return None
    return importlib.import_module(f"emo_prune_kernels.{module}")


def kernels(module: str = "moe") -> ModuleType:
    """An `emo_prune_kernels` module, or a RuntimeSetupError saying why it cannot be used."""
    loaded = _load(module)
    if loaded is None:
        raise RuntimeSetupError(
            "emo_triton needs triton (pip install 'triton>=3.2'); on CPU use experts_implementation=\"emo_cpu\""
        )
    return loaded


def triton_usable(device: torch.device | str) -> bool:
    """Whether the Triton kernels can run on tensors of `device` here (CUDA, or the interpreter)."""
    moe = _load("moe")
    return moe is not None and moe.can_run_on(torch.device(device))


def triton_experts(
    x: torch.Tensor, stack: ExpertStack, ids: torch.Tensor, weights: torch.Tensor, *, path: str = "auto"
) -> torch.Tensor:
    """path: "auto", "decode" (per-pair vector x matrix) or "sorted" (grouped GEMMs)."""
    if not triton_usable(x.device):
        raise RuntimeSetupError(
            f"emo_triton cannot run on {x.device}: it needs a CUDA device (or TRITON_INTERPRET=1 for tests); "
            'on CPU use experts_implementation="emo_cpu"'
        )
    return kernels().fused_experts(
        x, stack.gate_up, stack.down, ids, weights, transposed=stack.transposed, concatenated=stack.concatenated, path=path
    )


emo_triton_experts_forward = interface_entry("emo_triton", triton_experts)
