"""The `emo-prune` model type for lm-eval: HFLM over a model folder loaded the emo-prune way.

lm-eval 0.4.13 finds model types only in its own registry (no entry points, no plugin imports), so
`lm_eval --model emo-prune` works once this module is imported: `python -m emo_prune.eval` is
lm-eval's own CLI with it imported. From Python, `EmoPruneLM(pretrained=DIR, impl=...)` or
`emo_prune.eval.evaluate_model`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from lm_eval.api.registry import model_registry
from lm_eval.models.huggingface import HFLM

from emo_prune.memory import MemoryOptions
from emo_prune.models.loading import LoadSettings, load_model

MODEL_TYPE = "emo-prune"


class EmoPruneLM(HFLM):
    """`pretrained` is a local model folder (or an already loaded model, with `tokenizer`).

    model_args understood beyond HFLM's: impl (experts implementation or auto), dtype, device, memory
    (auto | whole | layerwise: accelerate's disk offload when the model does not fit) and max_memory.
    """

    def __init__(
        self,
        pretrained: str | Path | Any,
        impl: str = "auto",
        dtype: str = "auto",
        device: str | None = "cpu",
        tokenizer: Any = None,
        batch_size: int | str = 1,
        max_length: int | None = None,
        memory: str = "auto",
        max_memory: str | None = None,
        load: LoadSettings | None = None,
        **kwargs: Any,
    ) -> None:
        """`pretrained`: a model folder, or a loaded model. From lm-eval's model_args: impl, dtype, device,
        memory, max_memory (text); from Python, `load` in their place."""
        self.model_dir: str | None = None
        self.load_settings: LoadSettings | None = None
        if isinstance(pretrained, (str, Path)):
            self.model_dir = str(pretrained)
            self.load_settings = (
                load
                or LoadSettings(
                    impl=impl,
                    dtype=dtype,
                    device=device or "cpu",
                    memory=MemoryOptions(memory, max_memory),
                    rows=batch_size if isinstance(batch_size, int) else 1,
                    seq_len=max_length,
                )
            ).resolved()
            pretrained, loaded_tokenizer = load_model(pretrained, self.load_settings)
            tokenizer = tokenizer or loaded_tokenizer
        super().__init__(pretrained=pretrained, tokenizer=tokenizer, batch_size=batch_size, max_length=max_length, **kwargs)
        if self.load_settings is not None:
            import torch

            from emo_prune.process.distributed import current_world

            self._device = torch.device(self.load_settings.device)  # an offloaded model's own `.device` is meta
            # under torchrun / accelerate launch: lm-eval shards each task's documents by rank, gathers on rank 0
            world = current_world(self.load_settings.device)
            self._rank, self._world_size = world.rank, world.size

    # lm-eval's collectives for a model it did not load itself (HFLM's go through an accelerate object)
    def all_gather(self, tensor: Any) -> Any:
        if self.world_size <= 1:
            return tensor
        import torch
        import torch.distributed as dist

        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor)
        return torch.stack(parts) if tensor.dim() == 0 else torch.cat(parts)

    def barrier(self) -> None:
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()

    # lm-eval's own tqdm bars would bypass our output sink: report phases to `on_phase` instead.
    on_phase: Callable[[str, int], None] | None = None

    def _phase(self, name: str, requests: list[Any]) -> None:
        if self.on_phase is not None:
            self.on_phase(name, len(requests))

    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[Any]:
        self._phase("loglikelihood", requests)
        return super().loglikelihood(requests, disable_tqdm=True)

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[Any]:
        self._phase("rolling loglikelihood", requests)
        return super().loglikelihood_rolling(requests, disable_tqdm=True)

    def _loglikelihood_tokens(self, requests: list[Any], disable_tqdm: bool = False, override_bs: int | None = None) -> list[Any]:
        # HFLM's rolling path calls this per batch of windows with disable_tqdm=False hard-coded
        return super()._loglikelihood_tokens(requests, disable_tqdm=True, override_bs=override_bs)

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[Any]:
        self._phase("generation", requests)
        return super().generate_until(requests, disable_tqdm=True)

    def get_model_info(self) -> dict[str, Any]:
        """HFLM's version asks the Hub for a commit sha: never here (offline, local folders)."""
        info: dict[str, Any] = {
            "model_num_parameters": sum(p.numel() for p in self.model.parameters()),
            "model_dtype": str(self.model.dtype),
            "model_dir": self.model_dir,
        }
        if self.load_settings is not None:
            info["experts_implementation"] = self.load_settings.impl
        return info


def register() -> None:
    """Idempotent: lm-eval's registry refuses a second, different class under the same name."""
    if model_registry.get(MODEL_TYPE, None) is None:
        model_registry.register(MODEL_TYPE)(EmoPruneLM)


register()


def with_coverage(lm: Any, model_dir: str | Path) -> Any:
    """`lm` (an EmoPruneLM) measuring per-request coverage when `model_dir` has the coverage side file.

    Before lm-eval scores a batch, one extra forward per request of its context (the whole text for a
    rolling request) measures how much of the full router's mass falls on the build's experts
    (`emo_prune.extract.coverage_meter`); the values collect in `lm.coverages`, the meter in `lm.coverage_meter`.
    """
    from emo_prune.extract.coverage_meter import CoverageMeter

    meter = CoverageMeter.of_build(lm.model, model_dir)
    if meter is None:
        return lm
    lm.coverages, lm.coverage_meter = [], meter

    def measured(method: Callable[..., Any]) -> Callable[..., Any]:
        def run(requests: list[Any], *args: Any, **kwargs: Any) -> Any:
            for request in requests:
                ids = (lm.tok_encode(request.args[0]) or [lm.prefix_token_id])[-lm.max_length :]
                lm.coverages.append(meter.of_tokens(ids).value)
            return method(requests, *args, **kwargs)

        return run

    for name in ("loglikelihood", "loglikelihood_rolling", "generate_until"):
        setattr(lm, name, measured(getattr(lm, name)))
    return lm
