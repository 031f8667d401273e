"""lm-eval model type `emo-prune-pool`: every request is evaluated within its own pools, chosen from
its context (`emo_prune.serve.runtime`).

loglikelihood: the pools come from the request's context, the continuation is scored within them (one
request per forward: each has its own pools). loglikelihood_rolling has no context to choose from (the
whole text is scored), so it is refused. generate_until: greedy decoding within the prompt's pools.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from lm_eval.api.registry import model_registry
from lm_eval.models.huggingface import HFLM

from emo_prune.errors import EvalError
from emo_prune.serve.runtime import load_pool_runtime
from emo_prune.serve.settings import PoolSettings, compute_dtype

MODEL_TYPE = "emo-prune-pool"
CONTEXT_TASKS = "emo_answer_code, emo_answer_math, emo_answer_prose (tag emo_answer)"


class PoolLM(HFLM):
    """`pretrained`: a local EMO model folder. model_args: PoolSettings' fields (pool, draft, pool_index, ...:
    their defaults), dtype (`auto`: float32), device; or, from Python, `settings` in their place."""

    def __init__(
        self,
        pretrained: str | Path,
        dtype: str = "float32",
        device: str = "cpu",
        max_length: int | None = None,
        on_request: Callable[[dict[str, Any]], None] | None = None,
        settings: PoolSettings | None = None,
        **kwargs: Any,
    ) -> None:
        from emo_prune.models.loading import load_tokenizer

        names = {f.name for f in fields(PoolSettings)}  # the pool's model_args (text, from lm-eval's command line)
        given = {name: kwargs.pop(name) for name in list(kwargs) if name in names}
        settings = settings or PoolSettings.from_text(**given)
        self.runtime = load_pool_runtime(pretrained, settings, compute_dtype(dtype), device)
        self.model_dir = str(pretrained)
        self.reports: list[dict[str, Any]] = []
        self.on_request = on_request
        tokenizer = load_tokenizer(pretrained)
        super().__init__(pretrained=self.runtime.model, tokenizer=tokenizer, batch_size=1, max_length=max_length, **kwargs)

    on_phase: Callable[[str, int], None] | None = None

    def _phase(self, name: str, requests: list[Any]) -> None:
        if self.on_phase is not None:
            self.on_phase(name, len(requests))

    def _record(self, report: Any) -> None:
        summary = report.to_dict()
        self.reports.append(summary)
        if self.on_request is not None:
            self.on_request(summary)

    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[Any]:
        self._phase("loglikelihood in pools", requests)
        return super().loglikelihood(requests, disable_tqdm=True)

    def _loglikelihood_tokens(self, requests: list[Any], disable_tqdm: bool = False, override_bs: int | None = None) -> list[Any]:
        results = []
        for key, context, continuation in requests:
            room = self.max_length + 1 - len(continuation)  # lm-eval's left truncation of the context
            if room < 1:
                raise EvalError(f"a continuation of {len(continuation)} tokens does not fit in {self.max_length}")
            logprobs, greedy, report = self.runtime.score(list(context)[-room:], list(continuation))
            answer = (float(logprobs.sum()), greedy)
            self._record(report)
            self.cache_hook.add_partial("loglikelihood", key, answer)
            results.append(answer)
        return results

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[Any]:
        raise EvalError(
            "--pool chooses each request's experts from its context, and a loglikelihood_rolling task "
            "(perplexity over a whole text, e.g. emo_ppl_*) has none: every scored token would choose its own "
            f"pool. Use context -> answer tasks instead: {CONTEXT_TASKS}"
        )

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        self._phase("generation in pools", requests)
        answers = []
        for request in requests:
            context, gen_kwargs = request.args
            until = [s for s in (gen_kwargs.get("until") or []) if s]
            if isinstance(until, str):
                until = [until]
            max_new = int(gen_kwargs.get("max_gen_toks", self.max_gen_toks))
            prompt = self.tok_encode(context)[-(self.max_length - max_new) :] or [self.prefix_token_id]
            new, report = self.runtime.generate(prompt, max_new, stop_ids={self.eot_token_id})
            text = self.tok_decode(new)
            for stop in until:
                text = text.split(stop)[0]
            self._record(report)
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), text)
            answers.append(text)
        return answers

    def get_model_info(self) -> dict[str, Any]:
        return {"model_dir": self.model_dir, "pool": self.runtime.settings.__dict__, "model_dtype": str(self.model.dtype)}


def register() -> None:
    if model_registry.get(MODEL_TYPE, None) is None:
        model_registry.register(MODEL_TYPE)(PoolLM)


register()
