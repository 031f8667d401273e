"""Layers written to an accelerate offload folder with plain file writes.

accelerate's `offload_state_dict` writes each tensor through a writable `np.memmap`: the written pages
stay mapped in the process until the map is collected, so offloading a layer briefly counts it twice in
the process's memory (+0.33 GB over the steady state when a 2.5 GB model was offloaded layer by layer).
This writes the same folder format (`<name>.dat` raw bytes, `index.json` {name: {dtype, shape}}, bf16 as
int16 and fp8 as int8 bit patterns, what `accelerate.utils.offload.load_offloaded_weight` reads back)
with `write()`, which maps nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

# dtypes numpy lacks: stored as the bit pattern of a same-width integer, under their own name
_AS_BITS = {torch.bfloat16: torch.int16, torch.float8_e4m3fn: torch.int8, torch.float8_e5m2: torch.int8}


def write_offloaded(folder: Path, tensors: dict[str, torch.Tensor], index: dict[str, Any]) -> None:
    """Write `tensors` (name -> CPU tensor) into `folder`, adding their entries to `index`."""
    for name, tensor in tensors.items():
        tensor = tensor.detach().cpu().contiguous()
        dtype = str(tensor.dtype).removeprefix("torch.")
        if tensor.dtype in _AS_BITS:
            tensor = tensor.view(_AS_BITS[tensor.dtype])
        array = tensor.numpy()
        index[name] = {"dtype": dtype, "shape": list(array.shape)}
        with open(folder / f"{name}.dat", "wb") as f:
            f.write(memoryview(array.reshape(-1) if array.ndim else array[None]))


def save_index(folder: Path, index: dict[str, Any]) -> None:
    from accelerate.utils.offload import save_offload_index

    save_offload_index(index, str(folder))
