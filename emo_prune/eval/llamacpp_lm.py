"""lm-eval model backed by llama.cpp: a GGUF file scored through lm-eval's own interfaces.

`LlamaCppLM` runs the offline tasks' loglikelihood and rolling loglikelihood (bits per byte) through
lm-eval's own scoring, with the build's Hugging Face tokenizer, so a GGUF file and its safetensors build
are scored on the same tokens. Generation tasks are refused (not needed by the offline tasks). The file
is run by `emo_prune.export.llamacpp` (llama.cpp's defaults, as a device would run it).

Shapes: S tokens of a sequence, V vocabulary, n continuation tokens.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from emo_prune.errors import EvalError
from emo_prune.export.llama_cpp_binding import llama_cpp_module
from emo_prune.export.llamacpp import gguf_logits, open_gguf


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


def evaluate_gguf(
    gguf: str | Path, tokenizer_dir: str | Path, settings: Any, label: str | None = None, threads: int | None = None
):
    """Scores of a GGUF file on `settings.tasks` (an EvalSettings), measured in llama.cpp: a ModelEval."""
    from emo_prune.eval.harness import run_tasks, task_scores, versions
    from emo_prune.eval.results import ModelEval
    from emo_prune.eval.tasks import task_manager
    from emo_prune.io import sha256_file

    gguf = Path(gguf)
    manager = task_manager(list(settings.tasks), list(settings.include_paths))
    start = time.perf_counter()
    lm = make_lm(gguf, tokenizer_dir, settings.max_length, threads)
    try:
        raw = run_tasks(lm, manager, settings)
    finally:
        lm.llm.close()
    identity = {
        "path": str(gguf.resolve()),
        "format": "gguf",
        "runtime": "llama.cpp",
        "digest": sha256_file(gguf),
        "bytes": gguf.stat().st_size,
    }
    return ModelEval(
        model=identity,
        settings={**settings.to_dict(), "runtime": "llama.cpp (llama-cpp-python)", "label": label or gguf.name},
        tasks=task_scores(raw),
        versions={**versions(), "llama_cpp_python": _llama_cpp_version()},
        seconds=round(time.perf_counter() - start, 3),
    )


def _llama_cpp_version() -> str:
    return str(getattr(llama_cpp_module(), "__version__", "unknown"))
