"""Loading a model folder for evaluation: experts implementation, dtype and device resolved by name.

`impl` names an experts implementation of transformers' ExpertsInterface: "eager" and transformers' own
("grouped_mm", "batched_mm") always exist; "emo_cpu" / "emo_triton" exist once `emo_prune.runtime`
is imported (done here when present). "auto" picks the fastest one for the device.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

import emo_prune  # noqa: F401  (registers the native EMO model with transformers' Auto classes)
from emo_prune.errors import CheckpointError, RuntimeSetupError
from emo_prune.io.checkpoint import Checkpoint
from emo_prune.memory import MemoryOptions

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class LoadSettings:
    impl: str = "auto"  # experts implementation name, or "auto"
    dtype: str = "auto"  # "auto" = as stored
    device: str = "cpu"  # torch device or "auto"
    memory: MemoryOptions = MemoryOptions()  # whole model in memory, or offloaded (auto: by the memory plan)
    rows: int = 8  # sequences per forward, for the memory estimate
    seq_len: int | None = None  # context length, for the memory estimate (None: the model's, at most 2048)

    def resolved(self) -> LoadSettings:
        device = resolve_device(self.device)
        return replace(self, impl=resolve_impl(self.impl, device), device=device)


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


def load_model(
    model_dir: str | Path, settings: LoadSettings, notify: Callable[[str], None] | None = None
) -> tuple[Any, Any]:
    """(model in eval mode on the device, tokenizer) from a local folder; `settings` must be resolved.

    When the whole model fits (the memory plan, `emo_prune.memory`), its weights are read tensor by
    tensor into the model's own parameters (`models.weights`): no second copy. When it does not, the
    layers that do not fit in the budget go to an offload folder on disk that accelerate's hooks read
    back in every forward (`_offloaded`): much slower, and `notify` says so.
    """
    from transformers import AutoTokenizer

    from emo_prune.memory import Workload, plan_memory
    from emo_prune.models.weights import load_pretrained
    from emo_prune.profile.model import resolve_dtype, resolve_seq_len

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").exists():
        raise CheckpointError(f"{model_dir} is not a model folder (no config.json)")
    checkpoint = Checkpoint.open(model_dir)  # headers and contained shard paths checked before transformers follows the index
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    except (OSError, ValueError) as exc:
        raise CheckpointError(
            f"{model_dir} has no usable tokenizer ({exc}); copy the tokenizer files beside config.json"
        ) from exc
    dtype = torch_dtype(settings.dtype)
    if dtype == "auto":
        dtype = resolve_dtype("auto", checkpoint.config)
    seq_len = min(settings.seq_len or 2048, resolve_seq_len(None, checkpoint.config))
    work = Workload(rows=settings.rows, seq_len=seq_len, kept_tokens=0, logits=True, kv_cache=True)
    choice = plan_memory("eval", [checkpoint], dtype, work, settings.memory, settings.device, notify)
    try:
        if choice.path == "layerwise":
            room = choice.budget.bytes - (choice.estimate.total - choice.estimate.weights)
            model = _offloaded(model_dir, dtype, settings, max(room, 0))
        else:
            model = load_pretrained(model_dir, dtype, settings.device, experts_implementation=settings.impl)
    except ValueError as exc:
        if "experts_implementation" in str(exc):
            raise RuntimeSetupError(f"{model_dir}: --impl {settings.impl} cannot run this model ({exc})") from exc
        raise CheckpointError(f"{model_dir} cannot be loaded by transformers: {exc}") from exc
    return model, tokenizer


def _offloaded(model_dir: Path, dtype: torch.dtype, settings: LoadSettings, room: int) -> Any:
    """The model under accelerate's hooks: the embeddings, the head and as many layers as fit in `room`
    bytes in memory, the other layers on disk.

    Built layer by layer (`models.weights`): each layer is read, then either kept or written to a
    private offload folder in accelerate's format and dropped, so loading holds one layer beyond what
    stays; `accelerate.dispatch_model` reads the offloaded layers back in every forward. The folder is
    deleted with the model.
    """
    import shutil
    import tempfile
    import weakref

    from accelerate import dispatch_model
    from accelerate.utils import offload_state_dict

    from emo_prune.io import Checkpoint
    from emo_prune.models.weights import decoder_of, head_modules, load_layer, load_module, meta_model

    device = torch.device(settings.device)
    checkpoint = Checkpoint.open(model_dir)
    model = meta_model(checkpoint.path, dtype, device, experts_implementation=settings.impl)
    decoder_name = model.base_model_prefix
    device_map: dict[str, Any] = {f"{decoder_name}.rotary_emb": device}
    used = 0
    for name in head_modules(model):
        module = load_module(model, checkpoint, name, dtype, device)
        used += sum(t.nbytes for t in module.state_dict().values())
        device_map[name] = device
    folder = tempfile.mkdtemp(prefix="emo-prune-offload-")
    for index in range(len(decoder_of(model).layers)):
        layer = load_layer(model, checkpoint, index, dtype, device)
        size = sum(t.nbytes for t in layer.state_dict().values())
        name = f"{decoder_name}.layers.{index}"
        if used + size <= room:
            device_map[name], used = device, used + size
        else:
            offload_state_dict(folder, {f"{name}.{k}": t for k, t in layer.state_dict().items()})
            layer.to("meta")
            device_map[name] = "disk"
    model = dispatch_model(model, device_map, main_device=device, offload_dir=folder)
    weakref.finalize(model, shutil.rmtree, folder, True)
    return model.eval()
