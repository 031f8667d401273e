"""Loading a model folder for evaluation: experts implementation, dtype and device resolved by name.

`impl` names an experts implementation of transformers' ExpertsInterface: "eager" and transformers' own
("grouped_mm", "batched_mm") always exist; "emo_cpu" / "emo_triton" exist once `emo_prune.runtime`
is imported (done here when present). "auto" picks the fastest one for the device.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import emo_prune  # noqa: F401  (registers the native EMO model with transformers' Auto classes)
from emo_prune.errors import CheckpointError, RuntimeSetupError
from emo_prune.io.checkpoint import Checkpoint

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class LoadSettings:
    impl: str = "auto"  # experts implementation name, or "auto"
    dtype: str = "auto"  # "auto" = as stored
    device: str = "cpu"  # torch device or "auto"

    def resolved(self) -> LoadSettings:
        device = resolve_device(self.device)
        return LoadSettings(impl=resolve_impl(self.impl, device), dtype=self.dtype, device=device)


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except RuntimeError as exc:
        raise RuntimeSetupError(f"--device {device!r} is not a torch device (use cpu, cuda, cuda:1 or auto)") from exc
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeSetupError(f"--device {device} asked for CUDA, but torch sees no CUDA device here; use --device cpu")
    return device


def _import_runtime() -> bool:
    """Register emo_cpu / emo_triton when the runtime package is installed."""
    if importlib.util.find_spec("emo_prune.runtime") is None:
        return False
    import emo_prune.runtime  # noqa: F401

    return True


def available_impls() -> list[str]:
    from transformers.integrations.moe import ALL_EXPERTS_FUNCTIONS

    _import_runtime()
    return ["eager", *sorted(ALL_EXPERTS_FUNCTIONS.keys())]


def resolve_impl(impl: str, device: str) -> str:
    has_runtime = _import_runtime()
    if impl == "auto":
        if has_runtime:
            from emo_prune.runtime import default_experts_implementation

            return default_experts_implementation(device)
        return "eager"
    known = available_impls()
    if impl not in known:
        hint = "" if has_runtime or not impl.startswith("emo_") else " (emo_prune.runtime is not installed)"
        raise RuntimeSetupError(f"--impl {impl!r} is not an experts implementation here{hint}; known: {', '.join(known)}")
    return impl


def torch_dtype(name: str) -> torch.dtype | str:
    if name == "auto":
        return "auto"
    if name not in DTYPES:
        raise RuntimeSetupError(f"--dtype {name!r} is not supported; use one of auto, {', '.join(DTYPES)}")
    return DTYPES[name]


def load_model(model_dir: str | Path, settings: LoadSettings) -> tuple[Any, Any]:
    """(model in eval mode on the device, tokenizer) from a local folder; `settings` must be resolved.

    The weights are read tensor by tensor into the model's own parameters (`models.weights`): no second copy.
    """
    from transformers import AutoTokenizer

    from emo_prune.io import read_json
    from emo_prune.models.weights import load_pretrained
    from emo_prune.profile.model import resolve_dtype

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").exists():
        raise CheckpointError(f"{model_dir} is not a model folder (no config.json)")
    Checkpoint.open(model_dir)  # headers and contained shard paths checked before transformers follows the index
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    except (OSError, ValueError) as exc:
        raise CheckpointError(
            f"{model_dir} has no usable tokenizer ({exc}); copy the tokenizer files beside config.json"
        ) from exc
    dtype = torch_dtype(settings.dtype)
    if dtype == "auto":
        dtype = resolve_dtype("auto", read_json(model_dir / "config.json", "model config"))
    try:
        model = load_pretrained(model_dir, dtype, settings.device, experts_implementation=settings.impl)
    except ValueError as exc:
        if "experts_implementation" in str(exc):
            raise RuntimeSetupError(f"{model_dir}: --impl {settings.impl} cannot run this model ({exc})") from exc
        raise CheckpointError(f"{model_dir} cannot be loaded by transformers: {exc}") from exc
    return model, tokenizer
