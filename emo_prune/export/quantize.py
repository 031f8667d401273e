"""Weight types of a GGUF export: which ggml type each tensor gets, and llama.cpp's own k-quants.

f32 / f16 / bf16 / q8_0 are encoded here with the `gguf` package (numpy), tensor by tensor. Norms (1-D)
and routers (`ffn_gate_inp`) stay F32 in every type, as convert_hf_to_gguf.py keeps them: routing decides
which experts run, and it is tiny. A tensor whose rows do not fill whole Q8_0 blocks (32) falls back to F16.
q4_k_m / q5_k_m / q6_k go through llama.cpp's quantizer (`llama_model_quantize`, llama-cpp-python), from an
intermediate F32 (or BF16 for a 16-bit source) file: k-quant importance and mixing rules are llama.cpp's.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import torch
from gguf import GGMLQuantizationType, LlamaFileType, quants

from emo_prune.errors import ExportError
from emo_prune.export.llama_cpp_binding import llama_cpp_module, quiet_stderr
from emo_prune.process.threads import current_threads

Q = GGMLQuantizationType
#: dtype -> (ggml type of the big weights, GGUF file type)
DIRECT = {
    "f32": (Q.F32, LlamaFileType.ALL_F32),
    "f16": (Q.F16, LlamaFileType.MOSTLY_F16),
    "bf16": (Q.BF16, LlamaFileType.MOSTLY_BF16),
    "q8_0": (Q.Q8_0, LlamaFileType.MOSTLY_Q8_0),
}
#: dtype -> llama.cpp file type, made by llama.cpp's quantizer
K_QUANTS = {
    "q4_k_m": LlamaFileType.MOSTLY_Q4_K_M,
    "q5_k_m": LlamaFileType.MOSTLY_Q5_K_M,
    "q6_k": LlamaFileType.MOSTLY_Q6_K,
}
DTYPES = (*DIRECT, *K_QUANTS)  # = emo_prune.export.formats.DTYPES (tests check)


def check_dtype(dtype: str) -> str:
    dtype = dtype.lower()
    if dtype not in DTYPES:
        raise ExportError(f"GGUF dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    return dtype


def tensor_type(dtype: str, role: str, shape: tuple[int, ...]) -> GGMLQuantizationType:
    """The ggml type of one tensor in a `dtype` file (k-quants: of the intermediate file)."""
    if role in ("norm", "router") or len(shape) == 1:
        return Q.F32
    weight_type = DIRECT[dtype][0]
    block = quants.GGML_QUANT_SIZES[weight_type][0]
    if shape[-1] % block:
        return Q.F16
    return weight_type


def nbytes(qtype: GGMLQuantizationType, shape: tuple[int, ...]) -> int:
    return int(np.prod(quants.quant_shape_to_byte_shape(shape, qtype)))


def encode(tensor: torch.Tensor, qtype: GGMLQuantizationType) -> np.ndarray:
    """fp32 tensor -> the array GGUFWriter writes (float for F32/F16, uint8 blocks for the others)."""
    array = tensor.detach().to(torch.float32).contiguous().numpy()
    if qtype == Q.F32:
        return array
    if qtype == Q.F16:
        return array.astype(np.float16)
    return quants.quantize(array, qtype)


def k_quantize(source: Path, target: Path, dtype: str, threads: int | None = None) -> None:
    """llama.cpp's own quantizer: `source` (F32/BF16 GGUF) -> `target` in k-quant `dtype`."""
    llama_cpp = llama_cpp_module()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = int(K_QUANTS[dtype])
    params.nthread = threads or current_threads()
    with (
        quiet_stderr()
    ):  # llama.cpp logs every tensor from C; fallbacks (rows not a multiple of 256) are expected on small widths
        rc = llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), ctypes.byref(params))
    if rc != 0:
        raise ExportError(f"llama.cpp's quantizer failed ({rc}) making {dtype} from {source}")
