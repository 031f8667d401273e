"""Hidden states of every calibration batch between two decoder layers (the layerwise runner's buffer).

Kept on CPU, one tensor per batch ([B, S, H] in the compute dtype), or on disk under an offload
folder (one safetensors file per batch, rewritten after each layer) when memory is tighter than
the calibration activations. The disk folder is a private temporary folder, removed on close.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from emo_prune.errors import OutputError


class ActivationStore:
    def __init__(self, offload_dir: Path | None = None):
        self._memory: dict[int, torch.Tensor] = {}
        self._tmp: tempfile.TemporaryDirectory | None = None
        if offload_dir is not None:
            try:
                Path(offload_dir).mkdir(parents=True, exist_ok=True)
                self._tmp = tempfile.TemporaryDirectory(prefix=".emo-prune-activations-", dir=offload_dir)
            except OSError as exc:
                raise OutputError(f"cannot use --offload-dir {offload_dir}: {exc.strerror or exc}") from exc

    def put(self, index: int, hidden: torch.Tensor) -> None:
        hidden = hidden.detach().to("cpu")
        if self._tmp is None:
            self._memory[index] = hidden
        else:
            save_file({"h": hidden.contiguous()}, str(Path(self._tmp.name) / f"{index}.safetensors"))

    def get(self, index: int) -> torch.Tensor:
        if self._tmp is None:
            return self._memory[index]
        return load_file(str(Path(self._tmp.name) / f"{index}.safetensors"))["h"]

    def close(self) -> None:
        self._memory.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> ActivationStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
