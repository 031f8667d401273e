"""Coverage guard of static builds: how much of the FULL router's probability mass a request puts on the
experts a build kept. A low value says the prompt is outside the build's domain.

Shapes: T tokens, K experts the build kept in a layer, D experts it dropped, H hidden.

`extract` writes the full router's rows of the dropped experts beside the build (SIDE_FILE, D x H per
layer: a few KB), so the build can rebuild the full router's logits: its own K logits and the D dropped
ones. Per token the coverage is the full router's probability on kept experts, over the block that
competes for tokens (the routed block for EMO's shared tail, whose shared block is always 1; every
expert for the other paths); per layer it is averaged over the request's tokens, per request over layers.

What a build's own domain reaches depends on the model and the budget, not only on the domain: a small
router spreads its probability thin (the bundled EMO's 25% code build covers held-out code at ~0.26,
its 12.5% one at ~0.13). So a request is judged against the build's CALIBRATION coverage (the router
mass its plan kept on the calibration text, recorded in its manifest): it is flagged below
`warn` x that (`DEFAULT_WARN`).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from emo_prune.arch import LayerLayout
from emo_prune.errors import CheckpointError
from emo_prune.extract.coverage import SIDE_FILE
from emo_prune.io.paths import contained_path
from emo_prune.io.safetensors_header import read_header

# Flag a request below this fraction of the build's calibration coverage. Chosen on calibration-split
# prompts (examples/experiments/coverage_threshold.py, bundled EMO): it flags no code prompt of the code builds and
# 0-9% of prose prompts of the prose builds, but 56-75% of math prompts given to the code builds and all
# code and prose prompts given to the math builds; 0.8 flags 22-38% of those math prompts, 0.9 already
# 47-84% of the math builds' own (a math question routes elsewhere than its worked answer).
DEFAULT_WARN = 0.85


def load_dropped_router(model_dir: str | Path, layouts: list[LayerLayout], hidden: int) -> dict[int, torch.Tensor] | None:
    """layer -> [D, H] float32 dropped router rows of a build, or None when it has no SIDE_FILE."""
    from safetensors import safe_open

    path = contained_path(Path(model_dir), SIDE_FILE, "coverage side file")
    if not path.exists():
        return None
    read_header(path)  # a regular, valid safetensors file before safetensors opens it (a FIFO would block)
    rows: dict[int, torch.Tensor] = {}
    try:
        with safe_open(str(path), framework="pt") as f:
            for name in f.keys():
                parts = name.split(".")
                if len(parts) != 3 or parts[0] != "layers" or parts[2] != "weight" or not parts[1].isdigit():
                    continue
                layer = int(parts[1])
                weight = f.get_tensor(name).float()
                if layer >= len(layouts) or layouts[layer].is_dense or weight.ndim != 2 or weight.shape[1] != hidden:
                    raise CheckpointError(f"{path}: {name} of shape {tuple(weight.shape)} does not fit this model")
                rows[layer] = weight
    except CheckpointError:
        raise
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"{path} is not a valid coverage side file: {exc}") from exc
    return rows


def calibration_coverage(model_dir: str | Path, layouts: list[LayerLayout], dropped: dict[int, torch.Tensor]) -> float:
    """The coverage the build's own calibration text reaches: the mean over its domains and layers of the
    plan's `coverage` (router mass kept, from the profile) in the build's manifest. A build without one (a
    plan made without a profile: random, or a count) gets what a flat router would give, each layer's
    share of routed experts kept. The manifest is untrusted: anything but numbers in (0, 1] is ignored."""
    from emo_prune.extract.card import read_manifest

    recorded = (read_manifest(Path(model_dir)) or {}).get("coverage")
    per_domain = recorded.values() if isinstance(recorded, dict) else []
    values = [v for layers in per_domain if isinstance(layers, list) for v in layers]
    if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 1 for v in values):
        return float(sum(values) / len(values))
    shares = []
    for index, rows in dropped.items():
        layout = layouts[index]  # the build's layer: K experts, rows.shape[0] = D dropped routed ones
        kept = layout.num_experts - (layout.num_shared if layout.num_shared and not layout.always_active else 0)
        shares.append(kept / (kept + rows.shape[0]))
    return sum(shares) / len(shares) if shares else 1.0


def kept_share(kept_logits: torch.Tensor, dropped_logits: torch.Tensor, layout: LayerLayout) -> torch.Tensor:
    """[T] full-router probability on kept experts; `layout` is the BUILD's layer (K experts)."""
    kept_logits, dropped_logits = kept_logits.float(), dropped_logits.float()
    if layout.num_shared and not layout.always_active:
        kept_logits = kept_logits[:, : layout.num_experts - layout.num_shared]  # the routed block competes
    full = torch.cat([kept_logits, dropped_logits], dim=-1)  # [T, K' + D]
    return torch.softmax(full, dim=-1)[:, : kept_logits.shape[1]].sum(dim=-1)


@dataclass
class Coverage:
    per_layer: dict[int, float]
    tokens: int

    @property
    def value(self) -> float:
        return sum(self.per_layer.values()) / len(self.per_layer) if self.per_layer else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "coverage": round(self.value, 4),
            "per_layer": {str(k): round(v, 4) for k, v in self.per_layer.items()},
            "tokens": self.tokens,
        }


@dataclass
class CoverageMeter:
    """Hooks on a build's routers while `measure()` collects one request's coverage (only then: the
    model's other forwards, decoding or scoring, pay nothing)."""

    model: nn.Module
    dropped: dict[int, torch.Tensor]
    expected: float | None = None  # the build's calibration coverage (`calibration_coverage`)
    sums: dict[int, float] = field(default_factory=dict)
    tokens: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from emo_prune.models.weights import decoder_of

        self._hooks = []  # (router module, its hook)
        for index, layer in enumerate(cast(nn.ModuleList, decoder_of(self.model).layers)):
            gate = getattr(layer.mlp, "gate", None)
            if index in self.dropped and gate is not None:
                self._hooks.append((gate, self._hook(index, cast(LayerLayout, layer.mlp.layout))))

    def _hook(self, index: int, layout: LayerLayout):
        def hook(module: nn.Module, args: tuple, output: tuple) -> None:
            hidden, kept_logits = args[0], output[0]  # [T, H], [T, K]
            dropped_logits = F.linear(hidden.float(), self.dropped[index].to(hidden.device))  # [T, D]
            share = kept_share(kept_logits, dropped_logits, layout)
            self.sums[index] = self.sums.get(index, 0.0) + float(share.sum())
            self.tokens[index] = self.tokens.get(index, 0) + share.shape[0]

        return hook

    @classmethod
    def of_build(cls, model: nn.Module, model_dir: str | Path) -> CoverageMeter | None:
        """The meter of a build loaded as `model`, None when `model_dir` has no coverage side file."""
        loaded: Any = model  # a transformers CausalLM: .model.layouts (EMO's and ours), .config
        layouts = list(loaded.model.layouts)
        dropped = load_dropped_router(model_dir, layouts, loaded.config.hidden_size)
        if not dropped:
            return None
        return cls(model, dropped, expected=calibration_coverage(model_dir, layouts, dropped))

    def warn_below(self, warn: float | None) -> float:
        """The coverage under which a request is flagged: `warn` (DEFAULT_WARN if None) x the calibration coverage."""
        return (DEFAULT_WARN if warn is None else warn) * (self.expected if self.expected is not None else 1.0)

    @contextmanager
    def measure(self):
        self.sums, self.tokens = {}, {}
        result = Coverage(per_layer={}, tokens=0)
        handles = [gate.register_forward_hook(hook) for gate, hook in self._hooks]
        try:
            yield result
        finally:
            for handle in handles:
                handle.remove()
        result.per_layer = {i: self.sums[i] / self.tokens[i] for i in sorted(self.sums) if self.tokens[i]}
        result.tokens = max(self.tokens.values(), default=0)

    @torch.no_grad()
    def of_tokens(self, ids: list[int]) -> Coverage:
        """Coverage of one request's tokens (one extra forward of the build)."""
        device = next(self.model.parameters()).device
        with self.measure() as result:
            self.model(input_ids=torch.tensor([ids], device=device))
        return result
