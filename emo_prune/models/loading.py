"""Loading a model folder, defined once for profile, greedy, verify, eval and bench.

Device, dtype and context length resolved by name; the model's own tokenizer; the experts
implementation; EMO registered with transformers' Auto classes (importing `emo_prune` does it); and
the memory plan's choice between reading the whole model tensor by tensor into its own parameters
and accelerate's disk offload.

`impl` names an experts implementation of transformers' ExpertsInterface: "eager" and transformers' own
("grouped_mm", "batched_mm") always exist; "emo_cpu" / "emo_triton" exist once `emo_prune.runtime`
is imported (done here when present). "auto" picks the fastest one for the device.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

import emo_prune  # noqa: F401  (registers the native EMO model with transformers' Auto classes)
from emo_prune.errors import CheckpointError, ConfigError, RuntimeSetupError
from emo_prune.io.checkpoint import Checkpoint
from emo_prune.io.dtypes import COMPUTE_NAMES, compute_dtype_name, tag_for_name, torch_dtype
from emo_prune.io.model_files import staged_files
from emo_prune.memory import MemoryOptions

DEFAULT_SEQ_LEN = 2048  # context length when neither the user nor the model says less


def resolve_device(device: str, local_rank: int = 0) -> str:
    """'auto' -> cuda when torch sees one, else cpu; a bare 'cuda' -> this process's GPU (`local_rank`)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except RuntimeError as exc:
        raise RuntimeSetupError(f"--device {device!r} is not a torch device (use cpu, cuda, cuda:1 or auto)") from exc
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeSetupError(f"--device {device} asked for CUDA, but torch sees no CUDA device here; use --device cpu")
        if parsed.index is None:
            return f"cuda:{local_rank}"
    return device


def resolve_dtype(dtype: str, config: dict) -> torch.dtype:
    """'auto' = the checkpoint's own dtype (config `torch_dtype` / `dtype`), float32 when it names none."""
    name = compute_dtype_name(dtype, config)
    if name is None:
        raise ConfigError(f"--dtype {dtype!r} is not supported; use one of auto, {', '.join(COMPUTE_NAMES)}")
    return torch_dtype(tag_for_name(name))


def context_length(config: dict) -> int | None:
    """The positions a model attends over (config `max_position_embeddings`); None when it names none."""
    limit = config.get("max_position_embeddings")
    return limit if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else None


def resolve_seq_len(seq_len: int | None, config: dict) -> int:
    limit = context_length(config)
    if seq_len is None:
        return min(DEFAULT_SEQ_LEN, limit) if limit is not None else DEFAULT_SEQ_LEN
    if seq_len <= 0:
        raise ConfigError(f"--seq-len must be positive, got {seq_len}")
    if limit is not None and seq_len > limit:
        raise ConfigError(f"--seq-len {seq_len} exceeds the model's max_position_embeddings {limit}")
    return seq_len


def load_tokenizer(model_dir: str | Path) -> Any:
    """The model's own tokenizer: every command tokenizes its text with it.

    transformers reads the checked copies of the folder's files (`io.model_files.staged_files`: regular
    files inside the folder only), never the folder itself."""
    from transformers import AutoTokenizer

    with staged_files(model_dir) as staged:
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(staged))
        except Exception as exc:  # transformers raises OSError / ValueError / KeyError for missing or broken files
            reason = str(exc).replace(str(staged), str(model_dir)).splitlines()[0] if str(exc) else type(exc).__name__
            raise CheckpointError(
                f"cannot load the tokenizer from {model_dir} ({reason}); copy the model's tokenizer files beside config.json"
            ) from exc
    tokenizer.name_or_path = str(model_dir)  # where it came from, not the deleted private copy
    return tokenizer


@dataclass(frozen=True)
class LoadSettings:
    impl: str = "auto"  # experts implementation name, or "auto"
    dtype: str = "auto"  # "auto" = as stored
    device: str = "cpu"  # torch device or "auto"
    memory: MemoryOptions = MemoryOptions()  # whole model in memory, or offloaded (auto: by the memory plan)
    rows: int = 8  # sequences per forward, for the memory estimate
    seq_len: int | None = None  # context length, for the memory estimate (None: the model's, at most 2048)

    def resolved(self) -> LoadSettings:
        device = resolve_device(self.device, int(os.environ.get("LOCAL_RANK", "0")))  # one GPU per launched process
        return replace(self, impl=resolve_impl(self.impl, device), device=device)


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


def load_model(model_dir: str | Path, settings: LoadSettings) -> tuple[Any, Any]:
    """(model in eval mode on the device, tokenizer) from a local folder; `settings` must be resolved.

    When the whole model fits (the memory plan, `emo_prune.memory`), its weights are read tensor by
    tensor into the model's own parameters (`load_whole`): no second copy. When it does not, the
    layers that do not fit in the budget go to an offload folder on disk that accelerate's hooks read
    back in every forward (`_offloaded`): much slower, and a note (`emo_prune.events`) says so.
    """
    from emo_prune.memory import Workload, plan_memory

    checkpoint = _open(model_dir)
    dtype = resolve_dtype(settings.dtype, checkpoint.config)
    seq_len = min(settings.seq_len or DEFAULT_SEQ_LEN, resolve_seq_len(None, checkpoint.config))
    work = Workload(rows=settings.rows, seq_len=seq_len, kept_tokens=0, logits=True, kv_cache=True)
    choice = plan_memory("eval", [checkpoint], dtype, work, settings.memory, settings.device)
    tokenizer = load_tokenizer(checkpoint.path)
    if choice.path != "layerwise":
        return load_whole(checkpoint.path, dtype, settings.device, settings.impl), tokenizer
    # the layerwise estimate is runtime + activations + KV cache + one layer; an offloaded layer read back
    # in a forward is held twice (accelerate copies it out of a file mapping, whose pages count until
    # the copy is done), so one more layer is kept free; what is left of the budget holds kept modules
    room = choice.budget.bytes - choice.estimate.total - choice.estimate.weights
    with _transformers_errors(checkpoint.path, settings.impl):
        model = _offloaded(checkpoint.path, dtype, settings, max(room, 0))
    return model, tokenizer


def load_whole(model_dir: str | Path, dtype: torch.dtype | str = torch.float32, device: str = "cpu", impl: str = "eager") -> Any:
    """The whole model in eval mode, weights read tensor by tensor into the model's own parameters; no
    memory plan (callers that need one plan first). The float32 / eager default is what greedy search
    and verify compare exactly."""
    from emo_prune.models.weights import load_pretrained

    checkpoint = _open(model_dir)
    if isinstance(dtype, str):
        dtype = resolve_dtype(dtype, checkpoint.config)
    with _transformers_errors(checkpoint.path, impl):
        return load_pretrained(checkpoint.path, dtype, device, experts_implementation=impl)


def _open(model_dir: str | Path) -> Checkpoint:
    """Headers and contained shard paths checked before transformers follows the index."""
    if not (Path(model_dir) / "config.json").exists():
        raise CheckpointError(f"{model_dir} is not a model folder (no config.json)")
    return Checkpoint.open(model_dir)


@contextmanager
def _transformers_errors(model_dir: Path, impl: str) -> Iterator[None]:
    try:
        yield
    except ValueError as exc:
        if "experts_implementation" in str(exc):
            raise RuntimeSetupError(f"{model_dir}: --impl {impl} cannot run this model ({exc})") from exc
        raise CheckpointError(f"{model_dir} cannot be loaded by transformers: {exc}") from exc
    except OSError as exc:
        raise CheckpointError(f"cannot load {model_dir} with transformers: {exc}") from exc


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

    from emo_prune.io import Checkpoint
    from emo_prune.memory.allocator import release_freed_memory
    from emo_prune.models.offload import save_index, write_offloaded
    from emo_prune.models.weights import decoder_of, head_modules, load_layer, load_module, meta_model

    device = torch.device(settings.device)
    checkpoint = Checkpoint.open(model_dir)
    model = meta_model(checkpoint, dtype, device, experts_implementation=settings.impl)
    decoder_name = model.base_model_prefix
    device_map: dict[str, Any] = {f"{decoder_name}.rotary_emb": device}
    used = 0
    for name in head_modules(model):
        module = load_module(model, checkpoint, name, dtype, device)
        used += sum(t.nbytes for t in module.state_dict().values())
        device_map[name] = device
    folder = tempfile.mkdtemp(prefix="emo-prune-offload-")
    offload_index: dict[str, Any] = {}
    for index in range(len(decoder_of(model).layers)):
        layer = load_layer(model, checkpoint, index, dtype, device)
        size = sum(t.nbytes for t in layer.state_dict().values())
        name = f"{decoder_name}.layers.{index}"
        if used + size <= room:
            device_map[name], used = device, used + size
        else:
            write_offloaded(Path(folder), {f"{name}.{k}": t for k, t in layer.state_dict().items()}, offload_index)
            layer.to("meta")
            release_freed_memory()  # the layer's weights leave the process (emo_prune/memory/allocator.py)
            device_map[name] = "disk"
    save_index(Path(folder), offload_index)
    model = dispatch_model(model, device_map, main_device=device, offload_dir=folder)
    weakref.finalize(model, shutil.rmtree, folder, True)
    return model.eval()
