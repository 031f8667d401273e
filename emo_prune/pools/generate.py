"""`emo-prune generate`: greedy generation from a prompt, streamed, in per-request pools or whole.

In pools (`PoolSettings`), the report names the pool of every layer, the cache's hits / misses / bytes
read and the resident expert bytes. Whole, a static build that carries the coverage side file
(`coverage.SIDE_FILE`) reports the prompt's coverage and warns below `coverage_warn`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from emo_prune.errors import PlanError
from emo_prune.pools.runtime import PoolSettings, load_pool_runtime


@dataclass
class GenerateResult:
    text: str
    prompt_tokens: int
    new_tokens: int
    prefill_seconds: float
    decode_seconds: float
    pool: dict[str, Any] | None = None  # RequestReport.to_dict() in pool mode
    coverage: dict[str, Any] | None = None  # Coverage.to_dict() of a static build with the side file
    coverage_warn: float | None = None
    rss_bytes: int = 0
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def low_coverage(self) -> bool:
        return self.coverage is not None and self.coverage_warn is not None and self.coverage["coverage"] < self.coverage_warn

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "low_coverage": self.low_coverage}


def rss_bytes() -> int:
    """This process's resident memory now (VmRSS), 0 where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


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
) -> GenerateResult:
    """Greedy continuation of `prompt`; `on_text(piece)` streams the decoded text as it grows."""
    from transformers import AutoTokenizer

    from emo_prune.models.loading import resolve_dtype

    if max_new_tokens < 1:
        raise PlanError(f"--max-new-tokens must be >= 1 (got {max_new_tokens})")
    compute = torch.float32 if dtype == "auto" else resolve_dtype(dtype, {})
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    ids = tokenizer(prompt)["input_ids"]
    if not ids:
        raise PlanError("the prompt is empty after tokenization")
    eos = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    streamer = _Streamer(tokenizer, on_text)
    if pool is not None:
        runtime = load_pool_runtime(model_dir, pool, compute, device)
        start = time.perf_counter()
        timer = _FirstToken(streamer)
        new, report = runtime.generate(ids, max_new_tokens, eos, on_token=timer)
        total = time.perf_counter() - start
        return GenerateResult(
            text=tokenizer.decode(new, skip_special_tokens=True),
            prompt_tokens=len(ids),
            new_tokens=len(new),
            prefill_seconds=timer.first - start if timer.first else total,
            decode_seconds=total - (timer.first - start if timer.first else total),
            pool=report.to_dict(),
            rss_bytes=rss_bytes(),
            settings={"pool": pool.__dict__, "dtype": str(compute)},
        )
    return _whole(model_dir, tokenizer, ids, eos, streamer, max_new_tokens, compute, device, coverage_warn)


def _whole(model_dir, tokenizer, ids, eos, streamer, max_new_tokens, compute, device, coverage_warn) -> GenerateResult:
    from transformers.cache_utils import DynamicCache

    from emo_prune.models.weights import load_pretrained
    from emo_prune.pools.coverage import DEFAULT_WARN, CoverageMeter, load_dropped_router

    model = load_pretrained(model_dir, compute, device)
    dropped = load_dropped_router(model_dir, list(model.model.layouts), model.config.hidden_size)
    meter = CoverageMeter(model, dropped) if dropped else None
    cache = DynamicCache(config=model.config)
    new: list[int] = []
    start = time.perf_counter()
    with torch.no_grad():
        if meter is not None:
            with meter.measure() as coverage:
                logits = model(input_ids=torch.tensor([ids], device=device), past_key_values=cache, use_cache=True).logits[0, -1]
            meter.remove()
        else:
            coverage = None
            logits = model(input_ids=torch.tensor([ids], device=device), past_key_values=cache, use_cache=True).logits[0, -1]
        prefill = time.perf_counter() - start
        for step in range(max_new_tokens):
            token = int(logits.argmax())
            new.append(token)
            streamer(token)
            if token in eos or step == max_new_tokens - 1:
                break
            logits = model(input_ids=torch.tensor([[token]], device=device), past_key_values=cache, use_cache=True).logits[0, -1]
    total = time.perf_counter() - start
    return GenerateResult(
        text=tokenizer.decode(new, skip_special_tokens=True),
        prompt_tokens=len(ids),
        new_tokens=len(new),
        prefill_seconds=prefill,
        decode_seconds=total - prefill,
        coverage=None if coverage is None else coverage.to_dict(),
        coverage_warn=(coverage_warn if coverage_warn is not None else DEFAULT_WARN) if coverage is not None else None,
        rss_bytes=rss_bytes(),
        settings={"pool": None, "dtype": str(compute)},
    )


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
