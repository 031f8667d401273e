"""Model-side plumbing shared by both runners: device / dtype resolution, tokenizer, model loading.

Both runners call the decoder of the causal LM (`model.model`, its `base_model_prefix`) so the
lm_head, which profiling does not need, is never computed.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from emo_prune.errors import CheckpointError, ConfigError, RuntimeSetupError
from emo_prune.models.weights import decoder_of  # noqa: F401  (re-exported for the runners)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DEFAULT_SEQ_LEN = 2048


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise RuntimeSetupError(f"--device {device!r} is not a torch device (use cpu, cuda, cuda:1 or auto)") from exc
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeSetupError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
        if resolved.index is None:
            resolved = torch.device("cuda", local_rank)
    return resolved


def resolve_dtype(dtype: str, config: dict) -> torch.dtype:
    """'auto' = the checkpoint's own dtype (config `torch_dtype` / `dtype`), float32 when it names none."""
    if dtype == "auto":
        dtype = str(config.get("dtype") or config.get("torch_dtype") or "float32").removeprefix("torch.")
    if dtype not in DTYPES:
        raise ConfigError(f"--dtype {dtype!r} is not supported; use one of auto, {', '.join(DTYPES)}")
    return DTYPES[dtype]


def resolve_seq_len(seq_len: int | None, config: dict) -> int:
    limit = config.get("max_position_embeddings")
    if seq_len is None:
        return min(DEFAULT_SEQ_LEN, limit) if isinstance(limit, int) else DEFAULT_SEQ_LEN
    if seq_len <= 0:
        raise ConfigError(f"--seq-len must be positive, got {seq_len}")
    if isinstance(limit, int) and seq_len > limit:
        raise ConfigError(f"--seq-len {seq_len} exceeds the model's max_position_embeddings {limit}")
    return seq_len


def load_tokenizer(model_dir: Path):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    except Exception as exc:  # transformers raises OSError / ValueError / KeyError for missing or broken files
        raise CheckpointError(
            f"cannot load the tokenizer from {model_dir} ({exc}); calibration text is tokenized with the model's own "
            f"tokenizer, so copy its tokenizer files into the model folder"
        ) from exc
    return tokenizer


def load_full_model(model_dir: Path, dtype: torch.dtype, device: torch.device) -> nn.Module:
    """The whole model, loaded tensor by tensor into its own parameters (no second copy of a layer)."""
    from emo_prune.models.weights import load_pretrained

    return load_pretrained(model_dir, dtype, device)
