"""Running a GGUF file in llama.cpp itself (llama-cpp-python): its logits.

`open_gguf` loads a file; `exact=True` also keeps the KV cache in F32 (llama.cpp's default F16 cache
alone moves logits by ~0.06 on emo-small), which the exactness tests use; quality numbers use llama.cpp's
defaults, as a device would run the file. Scoring a file with lm-eval is `emo_prune.eval.llamacpp_lm`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np

from emo_prune.export.llama_cpp_binding import llama_cpp_module, quiet_stderr
from emo_prune.process.threads import current_threads

GGML_TYPE_F32 = 0  # ggml_type of an F32 KV cache (llama.h)


def cpu_has_amx() -> bool:
    """An Intel CPU with AMX (Sapphire Rapids and later; Linux's /proc/cpuinfo flags)."""
    try:
        return "amx_int8" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


@contextlib.contextmanager
def without_extra_buffers(llama_cpp: Any, when: bool = True):
    """Load models without llama.cpp's extra buffer types (weight repacking, AMX), as llama-cli's
    `--no-repack` does.

    Why: llama.cpp's AMX kernels segfault on MoE models (llama.cpp issue 20824; here every Q8_0 MoE
    file crashed in its first decode on a Sapphire Rapids CPU with a native build of llama-cpp-python
    0.3.36, while F32/F16/BF16 files ran). `llama_cpp.Llama` takes no such option, but builds its model
    parameters from `llama_model_default_params`: this swaps that default while a model loads."""
    if not when:
        yield
        return
    module = llama_cpp.llama_cpp  # the ctypes bindings `llama_cpp.Llama` reads its defaults from
    default = module.llama_model_default_params

    def no_extra_buffers() -> Any:
        params = default()
        params.use_extra_bufts = False
        return params

    module.llama_model_default_params = no_extra_buffers
    try:
        yield
    finally:
        module.llama_model_default_params = default


def open_gguf(path: str | Path, *, n_ctx: int = 512, threads: int | None = None, exact: bool = False) -> Any:
    """A llama_cpp.Llama over `path` returning every position's logits."""
    llama_cpp = llama_cpp_module()
    kwargs: dict[str, Any] = dict(
        model_path=str(path),
        n_ctx=n_ctx,
        n_batch=n_ctx,
        n_ubatch=n_ctx,
        n_threads=threads or current_threads(),
        n_threads_batch=threads or current_threads(),
        logits_all=True,
        verbose=False,
    )
    if exact:
        kwargs.update(type_k=GGML_TYPE_F32, type_v=GGML_TYPE_F32)
    with quiet_stderr(), without_extra_buffers(llama_cpp, when=cpu_has_amx()):
        return llama_cpp.Llama(**kwargs)


def gguf_logits(llm: Any, ids: list[int]) -> np.ndarray:
    """[S, V] float32 logits of one sequence, from a fresh context."""
    llm.reset()
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)], dtype=np.float32)
