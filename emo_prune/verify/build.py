"""`verify`: a pruned checkpoint must equal its source with the dropped experts' router logits at -inf.

Both models run in float32 with transformers (`import emo_prune` registers EMO), one after the other
so only one is in memory: first the ORIGINAL, its routers masked to the plan's kept experts
(`emo_prune.select.masking`), then the PRUNED folder as it loads. Final logits [S, V] are compared on
each prompt; routing ids differ by construction (the pruned model renumbers experts), logits must not.
The plan comes from the pruned folder's emo_prune.json (or AI2's pruning_metadata.json).
When the masked ORIGINAL already gives NaN / Inf logits, its weights are at fault, not the build:
the report says so (`original_finite`) instead of blaming the extraction.

When the whole original does not fit in memory (`emo_prune.memory`, or `--layerwise`), the same
comparison runs layer by layer (`emo_prune.verify.layerwise`): one layer in memory at a time, with
each layer of the build also compared to the masked original's on the same inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from emo_prune.calib import Document
from emo_prune.common.constants import TOLERANCE  # noqa: E402
from emo_prune.errors import VerificationError
from emo_prune.io import Checkpoint
from emo_prune.memory import MemoryOptions, Workload, plan_memory
from emo_prune.models.loading import load_tokenizer, load_whole
from emo_prune.profile.batches import tokenize_documents
from emo_prune.select.masking import masked_experts
from emo_prune.select.plan import Kept, Plan, validate_plan

DEFAULT_PROMPTS = (
    "The quick brown fox jumps over the lazy dog while the experts decide who reads which token.",
    "def route(logits, top_k):\n    probs = softmax(logits, dim=-1)\n    return probs.topk(top_k)\n",
    "Question: What is 17 + 25? Answer: 17 + 25 = 42.",
    "A mixture of experts sends each token to a few of its many feed-forward networks.",
    'for i in range(10):\n    if i % 2 == 0:\n        print(f"even {i}")\n',
    "Question: Solve 3x + 4 = 19. Answer: 3x = 15, so x = 5.",
    "Emergent modularity: groups of experts specialize in code, mathematics, biomedical or legal prose.",
    "class Expert:\n    def forward(self, x):\n        return self.down(silu(self.gate(x)) * self.up(x))\n",
)


def prompts(n: int) -> list[str]:
    """n offline prompts: the built-ins, then pairs of them."""
    base = list(DEFAULT_PROMPTS)
    pairs = [f"{a} {b}" for a in base for b in base if a != b]
    return (base + pairs)[:n]


@dataclass
class VerifyReport:
    original: str
    pruned: str
    max_abs_diff: float
    per_prompt: list[float]
    tokens: int
    kept_counts: list[int | None]
    tolerance: float = TOLERANCE
    original_finite: bool = True  # False: the masked original's own logits hold NaN / Inf
    path: str = "whole"  # or "layerwise"
    per_layer: list[float] | None = None  # layerwise: max |difference| of each layer's outputs, same inputs

    @property
    def passed(self) -> bool:
        return self.original_finite and self.max_abs_diff <= self.tolerance

    def to_dict(self) -> dict[str, Any]:
        return {
            "original": self.original,
            "pruned": self.pruned,
            "passed": self.passed,
            "max_abs_diff": self.max_abs_diff,
            "tolerance": self.tolerance,
            "prompts": len(self.per_prompt),
            "tokens": self.tokens,
            "per_prompt_max_abs_diff": self.per_prompt,
            "kept_counts": self.kept_counts,
            "original_finite": self.original_finite,
            "path": self.path,
            "per_layer_max_abs_diff": self.per_layer,
        }

    def raise_for_failure(self) -> None:
        if not self.original_finite:
            raise VerificationError(
                f"the ORIGINAL {self.original} gives NaN/Inf logits with the dropped experts masked: its weights "
                f"hold NaN/Inf (`emo-prune extract` warns which), so {self.pruned} cannot be checked against it; "
                f"the build is not to blame"
            )
        if not self.passed:
            worst = max(range(len(self.per_prompt)), key=lambda i: self.per_prompt[i])
            raise VerificationError(
                f"{self.pruned} differs from the masked original by {self.max_abs_diff:.3g} (max abs logit, "
                f"prompt {worst + 1}), above the tolerance {self.tolerance:g}"
            )


@torch.inference_mode()
def _logits(model: torch.nn.Module, encoded: list[list[int]]) -> list[torch.Tensor]:
    return [model(input_ids=torch.tensor([ids]), use_cache=False).logits[0].float() for ids in encoded]  # [S, V] each


def _free(model: torch.nn.Module) -> None:
    """Drop a model's weights now: module graphs hold reference cycles, and a gc pass is slow."""
    for tensor in [*model.parameters(), *model.buffers()]:
        tensor.data = torch.empty(0)


def _check_pruned_layout(kept: Kept, pruned: Checkpoint) -> None:
    counts = [lay.num_experts for lay in pruned.architecture.layouts]
    expected = [0 if ids is None else len(ids) for ids in kept]
    if counts != expected:
        raise VerificationError(f"{pruned.path}/config.json gives {counts} experts per layer, but its plan keeps {expected}")


def _whole_logits(
    original: Checkpoint, pruned: Checkpoint, kept: Kept, encoded: list[list[int]]
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    model = load_whole(original.path)
    with masked_experts(model, original.architecture, kept):
        expected = _logits(model, encoded)
    _free(model)
    del model
    model = load_whole(pruned.path)
    return expected, _logits(model, encoded)


def verify(
    original_dir: str | Path,
    pruned_dir: str | Path,
    num_prompts: int = 8,
    tolerance: float = TOLERANCE,
    texts: list[str] | None = None,
    memory: MemoryOptions = MemoryOptions(),
    plan_path: str | Path | None = None,
) -> VerifyReport:
    """Run both models on `num_prompts` prompts (or `texts`) and compare logits; see the module docstring.

    The kept experts come from `plan_path` when given, else from the build's own manifest. `memory`
    picks the whole-model or the layerwise path (auto: by the memory plan, whose one-line note says
    when it switches to the layerwise path).
    """
    original, pruned = Checkpoint.open(original_dir), Checkpoint.open(pruned_dir)
    if plan_path is not None:
        plan = Plan.load(plan_path)
    else:
        plan = Plan.load(pruned.path, hint="pass --plan PLAN, the plan it was cut with")
    kept = validate_plan(plan, original.architecture, where=f"the plan in {pruned.path}")
    _check_pruned_layout(kept, pruned)

    tokenizer = load_tokenizer(original.path)
    # the one tokenization rule of profile, greedy and verify (the model's special tokens, then EOS)
    documents = [Document(text=t, domain="verify", source="verify") for t in (texts or prompts(num_prompts)) if t]
    encoded = [doc.ids for doc in tokenize_documents(documents, tokenizer)]
    if not encoded:
        raise VerificationError("no prompt produced any token")
    work = Workload(rows=1, seq_len=max(map(len, encoded)), kept_tokens=2 * sum(map(len, encoded)), logits=True)
    choice = plan_memory("verify", [original, pruned], torch.float32, work, memory, lean=True)
    per_layer = None
    if choice.path == "layerwise":
        from emo_prune.verify.layerwise import layerwise_logits

        expected, got, per_layer = layerwise_logits(original, pruned, kept, encoded)
    else:
        expected, got = _whole_logits(original, pruned, kept, encoded)
    original_finite = all(bool(torch.isfinite(x).all()) for x in expected)
    diffs = [float((a - b).abs().max()) for a, b in zip(expected, got)]
    diffs = [d if math.isfinite(d) else math.inf for d in diffs]  # NaN must fail, not compare False
    return VerifyReport(
        original=str(original.path),
        pruned=str(pruned.path),
        max_abs_diff=max(diffs),
        per_prompt=diffs,
        tokens=sum(len(ids) for ids in encoded),
        kept_counts=[None if ids is None else len(ids) for ids in kept],
        tolerance=tolerance,
        original_finite=original_finite,
        path=choice.path,
        per_layer=per_layer,
    )
