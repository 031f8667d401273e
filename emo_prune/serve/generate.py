"""`emo-prune generate`: greedy generation from a prompt, streamed, in per-request pools or whole.

A prompt and its new tokens must fit the model's context (config `max_position_embeddings`): a longer
one is refused before any forward, or with `truncate_prompt` cut to its last tokens that fit (a warning).

In pools (`PoolSettings`), the report names the pool of every layer, the cache's hits / misses / bytes
read and the resident expert bytes. Whole, a static build that carries the coverage side file
(`coverage.SIDE_FILE`) reports the prompt's coverage and warns below `coverage_warn`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from emo_prune import events
from emo_prune.errors import PromptError
from emo_prune.process.memory import rss_bytes
from emo_prune.serve.runtime import load_pool_runtime
from emo_prune.serve.settings import PoolSettings, compute_dtype


@dataclass
class GenerateResult:
    text: str
    prompt_tokens: int
    new_tokens: int
    prefill_seconds: float
    decode_seconds: float
    pool: dict[str, Any] | None = None  # RequestReport.to_dict() in pool mode
    coverage: dict[str, Any] | None = None  # Coverage.to_dict() of a static build with the side file
    coverage_warn: float | None = None  # the coverage below which the prompt is flagged (absolute)
    calibration_coverage: float | None = None  # what the build's own calibration text reaches
    rss_bytes: int = 0
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def low_coverage(self) -> bool:
        return self.coverage is not None and self.coverage_warn is not None and self.coverage["coverage"] < self.coverage_warn

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "low_coverage": self.low_coverage}


class Generator:
    """A model loaded once, whole or in pool mode (its expert store and cache shared by every request),
    that continues many prompts greedily: what a server holds. `generate` is one prompt of one."""

    def __init__(
        self,
        model_dir: str | Path,
        *,
        pool: PoolSettings | None = None,
        dtype: str = "float32",
        device: str = "cpu",
        coverage_warn: float | None = None,
    ) -> None:
        from emo_prune.io import Checkpoint
        from emo_prune.models.loading import context_length, load_tokenizer, resolve_device

        device = resolve_device(device)  # `--device cuda` without CUDA: one line, before anything loads
        self.compute = compute_dtype(dtype)
        self.device, self.pool = device, pool
        self.tokenizer = load_tokenizer(model_dir)  # first: names a missing folder as such
        self.context = context_length(Checkpoint.open(model_dir).config)
        self.eos = {self.tokenizer.eos_token_id} if self.tokenizer.eos_token_id is not None else set()
        if pool is not None:
            self.runtime = load_pool_runtime(model_dir, pool, self.compute, device)
            return
        from emo_prune.extract.coverage_meter import CoverageMeter
        from emo_prune.models.weights import load_pretrained

        self.model = load_pretrained(model_dir, self.compute, device)
        self.meter = CoverageMeter.of_build(self.model, model_dir)
        self.coverage_warn = self.meter.warn_below(coverage_warn) if self.meter is not None else None

    def generate(
        self, prompt: str, max_new_tokens: int = 64, on_text: Callable[[str], None] | None = None, truncate_prompt: bool = False
    ) -> GenerateResult:
        """Greedy continuation of `prompt`; `on_text(piece)` streams the decoded text as it grows. A prompt
        that does not fit the context with `max_new_tokens` is refused (PromptError), or with
        `truncate_prompt` cut to its last tokens. What the previous request freed (its KV cache,
        activations) goes back to the system first, whole model or pools alike (emo_prune/memory/allocator.py)."""
        from emo_prune.memory.allocator import release_freed_memory

        release_freed_memory()
        _check_length(max_new_tokens)
        ids = fit_context(self.tokenizer(prompt)["input_ids"], max_new_tokens, self.context, truncate_prompt)
        streamer = _Streamer(self.tokenizer, on_text)
        if self.pool is not None:
            return self._in_pools(ids, streamer, max_new_tokens)
        return self._whole(ids, streamer, max_new_tokens)

    def _in_pools(self, ids: list[int], streamer: _Streamer, max_new_tokens: int) -> GenerateResult:
        start = time.perf_counter()
        timer = _FirstToken(streamer)
        new, report = self.runtime.generate(ids, max_new_tokens, self.eos, on_token=timer)
        total = time.perf_counter() - start
        prefill = timer.first - start if timer.first else total
        return self._result(ids, new, prefill, total, pool=report.to_dict())

    def _whole(self, ids: list[int], streamer: _Streamer, max_new_tokens: int) -> GenerateResult:
        from transformers.cache_utils import DynamicCache

        model, device = self.model, self.device
        cache = DynamicCache(config=model.config)
        new: list[int] = []
        start = time.perf_counter()
        with torch.no_grad():
            with self.meter.measure() if self.meter is not None else nullcontext() as coverage:  # the prompt only
                logits = model(input_ids=torch.tensor([ids], device=device), past_key_values=cache, use_cache=True).logits[0, -1]
            prefill = time.perf_counter() - start
            for step in range(max_new_tokens):
                token = int(logits.argmax())
                new.append(token)
                streamer(token)
                if token in self.eos or step == max_new_tokens - 1:
                    break
                logits = model(input_ids=torch.tensor([[token]], device=device), past_key_values=cache, use_cache=True).logits[
                    0, -1
                ]
        total = time.perf_counter() - start
        if coverage is None:
            return self._result(ids, new, prefill, total)
        return self._result(
            ids,
            new,
            prefill,
            total,
            coverage=coverage.to_dict(),
            coverage_warn=self.coverage_warn,
            calibration_coverage=self.meter.expected,
        )

    def _result(self, ids: list[int], new: list[int], prefill: float, total: float, **found: Any) -> GenerateResult:
        return GenerateResult(
            text=self.tokenizer.decode(new, skip_special_tokens=True),
            prompt_tokens=len(ids),
            new_tokens=len(new),
            prefill_seconds=prefill,
            decode_seconds=total - prefill,
            rss_bytes=rss_bytes(),
            settings={"pool": None if self.pool is None else self.pool.__dict__, "dtype": str(self.compute)},
            **found,
        )


def generate(
    model_dir: str | Path,
    prompt: str,
    *,
    pool: PoolSettings | None = None,
    max_new_tokens: int = 64,
    dtype: str = "float32",
    device: str = "cpu",
    coverage_warn: float | None = None,
    on_text: Callable[[str], None] | None = None,
    truncate_prompt: bool = False,
) -> GenerateResult:
    """Greedy continuation of one prompt (`Generator` keeps the model for many)."""
    _check_length(max_new_tokens)  # before the model loads
    generator = Generator(model_dir, pool=pool, dtype=dtype, device=device, coverage_warn=coverage_warn)
    return generator.generate(prompt, max_new_tokens, on_text, truncate_prompt)


def _check_length(max_new_tokens: int) -> None:
    if max_new_tokens < 1:
        raise PromptError(f"--max-new-tokens must be >= 1 (got {max_new_tokens})")


def fit_context(ids: list[int], max_new_tokens: int, context: int | None, truncate: bool = False) -> list[int]:
    """`ids` when they and `max_new_tokens` fit `context`; else PromptError naming both numbers, or with
    `truncate` the last `context - max_new_tokens` of them (a warning says how many were dropped).

    Checked on token ids, before any forward: a 130k-token prompt on a 4096-position model is refused in
    the time tokenizing it takes, and an 8k one no longer runs past the positions the model learned."""
    if not ids:
        raise PromptError("the prompt is empty after tokenization")
    if context is None or len(ids) + max_new_tokens <= context:
        return ids
    if max_new_tokens >= context:
        raise PromptError(
            f"--max-new-tokens {max_new_tokens} leaves no room for a prompt in the model's context of {context} "
            f"positions (max_position_embeddings); lower --max-new-tokens below {context}"
        )
    room = context - max_new_tokens
    if not truncate:
        raise PromptError(
            f"the prompt is {len(ids)} tokens and --max-new-tokens is {max_new_tokens}: {len(ids) + max_new_tokens} "
            f"> the model's context of {context} positions (max_position_embeddings); shorten the prompt to {room} "
            f"tokens, lower --max-new-tokens, or pass --truncate-prompt to keep its last {room} tokens"
        )
    events.warn(
        f"the prompt is {len(ids)} tokens; kept its last {room} (the model's context of {context} positions "
        f"less --max-new-tokens {max_new_tokens}), dropped the first {len(ids) - room}"
    )
    return ids[-room:]


class _Streamer:
    """Calls `on_text` with the new text each token adds (decoding the whole output: BPE merges)."""

    def __init__(self, tokenizer: Any, on_text: Callable[[str], None] | None):
        self.tokenizer, self.on_text, self.ids, self.shown = tokenizer, on_text, [], ""

    def __call__(self, token: int) -> None:
        self.ids.append(token)
        if self.on_text is None:
            return
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.startswith(self.shown):
            self.on_text(text[len(self.shown) :])
        self.shown = text


class _FirstToken:
    def __init__(self, streamer: _Streamer):
        self.streamer, self.first = streamer, None

    def __call__(self, token: int) -> None:
        if self.first is None:
            self.first = time.perf_counter()
        self.streamer(token)
