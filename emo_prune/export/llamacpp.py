"""Running a GGUF file in llama.cpp itself (llama-cpp-python): logits, and lm-eval scores.

`open_gguf` loads a file; `exact=True` also keeps the KV cache in F32 (llama.cpp's default F16 cache
alone moves logits by ~0.06 on emo-small), which the exactness tests use; quality numbers use llama.cpp's
defaults, as a device would run the file. `LlamaCppLM` is an lm-eval model backed by llama.cpp: the
offline tasks' loglikelihood and rolling loglikelihood (bits per byte) run through lm-eval's own
scoring, with the build's Hugging Face tokenizer, so a GGUF file and its safetensors build are scored
on the same tokens. Generation tasks are refused (not needed by the offline tasks).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from emo_prune.errors import EvalError
from emo_prune.export.quantize import llama_cpp_module
from emo_prune.threads import current_threads

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


@contextlib.contextmanager
def quiet_stderr():
    """llama.cpp prints its load log from C to fd 2 even with verbose=False for some messages."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


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


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def make_lm(gguf: str | Path, tokenizer_dir: str | Path, max_length: int | None = None, threads: int | None = None) -> Any:
    """An lm-eval `LM` that scores with the GGUF file in llama.cpp (built lazily: lm-eval imports slowly)."""
    from lm_eval import utils
    from lm_eval.api.model import LM
    from emo_prune.models.loading import load_tokenizer

    class LlamaCppLM(LM):
        def __init__(self) -> None:
            super().__init__()
            self.tokenizer = load_tokenizer(tokenizer_dir)
            self.max_length = max_length or _context_length(Path(tokenizer_dir))
            self.llm = open_gguf(gguf, n_ctx=self.max_length + 1, threads=threads)
            eot = self.tokenizer.eos_token_id
            self.prefix_token_id = eot if eot is not None else self.tokenizer.bos_token_id

        def _encode(self, text: str) -> list[int]:
            return self.tokenizer.encode(text, add_special_tokens=False)

        def _score(self, context: list[int], continuation: list[int]) -> tuple[float, bool]:
            tokens = (context + continuation)[-(self.max_length + 1) :]
            inputs = tokens[:-1]
            logprobs = _log_softmax(gguf_logits(self.llm, inputs))[-len(continuation) :]  # [n, V]
            picked = logprobs[np.arange(len(continuation)), continuation]
            greedy = bool((logprobs.argmax(-1) == np.array(continuation)).all())
            return float(picked.sum()), greedy

        def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
            results = []
            for request in requests:
                context, continuation = request.args
                spaces = len(context) - len(context.rstrip())  # as HFLM: trailing spaces go to the continuation
                if spaces:
                    continuation, context = context[-spaces:] + continuation, context[:-spaces]
                whole, ctx = self._encode(context + continuation), self._encode(context)
                ctx_ids, cont_ids = (whole[: len(ctx)], whole[len(ctx) :]) if context else ([self.prefix_token_id], whole)
                results.append(self._score(ctx_ids, cont_ids))
            return results

        def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
            results = []
            for request in requests:
                (text,) = request.args
                windows = map(
                    utils.make_disjoint_window,
                    utils.get_rolling_token_windows(
                        token_list=self._encode(text),
                        prefix_token=self.prefix_token_id,
                        max_seq_len=self.max_length,
                        context_len=1,
                    ),
                )
                results.append(sum(self._score(list(ctx), list(cont))[0] for ctx, cont in windows))
            return results

        def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
            raise EvalError("generation tasks are not run on GGUF files; use loglikelihood tasks (emo_ppl_*, emo_math_mc)")

    return LlamaCppLM()


def _context_length(model_dir: Path) -> int:
    """The window lm-eval's HFLM uses for the same build: the config's context, else 2048."""
    from emo_prune.io import Checkpoint

    return int(Checkpoint.open(model_dir).config.get("max_position_embeddings") or 2048)


def evaluate_gguf(gguf: str | Path, tokenizer_dir: str | Path, settings: Any, label: str | None = None, threads: int | None = None):
    """Scores of a GGUF file on `settings.tasks` (an EvalSettings), measured in llama.cpp: a ModelEval."""
    from emo_prune.eval.harness import _run, task_scores, versions
    from emo_prune.eval.results import ModelEval
    from emo_prune.eval.tasks import task_manager
    from emo_prune.io import sha256_file

    gguf = Path(gguf)
    manager = task_manager(list(settings.tasks), list(settings.include_paths))
    start = time.perf_counter()
    lm = make_lm(gguf, tokenizer_dir, settings.max_length, threads)
    try:
        raw = _run(lm, manager, settings)
    finally:
        lm.llm.close()
    identity = {"path": str(gguf.resolve()), "format": "gguf", "runtime": "llama.cpp", "digest": sha256_file(gguf), "bytes": gguf.stat().st_size}
    return ModelEval(
        model=identity,
        settings={**settings.to_dict(), "runtime": "llama.cpp (llama-cpp-python)", "label": label or gguf.name},
        tasks=task_scores(raw),
        versions={**versions(), "llama_cpp_python": _llama_cpp_version()},
        seconds=round(time.perf_counter() - start, 3),
    )


def _llama_cpp_version() -> str:
    return str(getattr(llama_cpp_module(), "__version__", "unknown"))
