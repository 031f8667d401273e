"""Dtype names, defined once: what a user types, the safetensors header tag, the torch dtype.

Torch-free at import (headers, plans and inventories are read without torch); `torch_dtype` and
`tag_of` import it when called.
"""

from __future__ import annotations

from typing import Any

# safetensors header tag -> bytes per element
TAG_BYTES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1,
}  # fmt: skip
# safetensors header tag -> attribute of the torch module
_TORCH_NAMES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
    "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8",
    "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool",
}  # fmt: skip
# what a user may type for a floating-point dtype -> header tag
NAME_TAGS = {"float32": "F32", "fp32": "F32", "bfloat16": "BF16", "bf16": "BF16", "float16": "F16", "fp16": "F16"}
# the dtypes models compute in, by their canonical name
COMPUTE_NAMES = ("float32", "bfloat16", "float16")
_TAG_NAMES = {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}


def torch_dtype(tag: str) -> Any:
    """'BF16' -> torch.bfloat16 (any tag of TAG_BYTES)."""
    import torch

    return getattr(torch, _TORCH_NAMES[tag])


def tag_of(dtype: Any) -> str:
    """torch.bfloat16 -> 'BF16'."""
    name = str(dtype).removeprefix("torch.")
    for tag, torch_name in _TORCH_NAMES.items():
        if torch_name == name:
            return tag
    raise KeyError(f"no safetensors tag for {dtype}")


def tag_for_name(name: str) -> str | None:
    """A user's dtype name -> header tag; None for a name it does not know (callers word the error)."""
    return NAME_TAGS.get(name.lower().removeprefix("torch."))


def compute_dtype_name(name: str, config: dict[str, Any]) -> str | None:
    """'auto' = the checkpoint's own dtype (config `dtype` / `torch_dtype`), float32 when it names none;
    otherwise the canonical name of `name`; None when it is not a compute dtype."""
    if name == "auto":
        name = str(config.get("dtype") or config.get("torch_dtype") or "float32")
    tag = tag_for_name(name)
    return _TAG_NAMES.get(tag) if tag else None
