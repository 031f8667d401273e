"""Which parameters a fine-tuning run trains: AI2's freeze modes, at the level of tensors and expert rows.

Shapes: E experts of a layer (shared / always-active included), H hidden, I expert width.
In memory, transformers 5 stacks a layer's experts: `experts.gate_up_proj` [E, 2I, H], `experts.down_proj`
[E, H, I]; the router is `gate.weight` [E, H]. EMO's shared experts are the LAST rows of those stacks (the
family's `tail` kind), so "train the routed experts but not the shared one" cannot be said with
`requires_grad` alone: such a tensor trains only some of its rows. Those rows are enforced with a gradient
hook that zeroes the other rows' gradient (a mask [E, 1, 1]); with AdamW, weight decay 0 (AI2's setting,
the only one `finetune` uses), a row whose gradient is always zero never moves: its moments stay 0 and
its update is 0 / (0 + eps) = 0, so frozen rows are saved byte-identical. Hooks were chosen over
splitting the parameter because the model, its checkpoints and peft all keep seeing the stock modules.

Modes (AI2's `freeze_mode` in src/hf_training/finetune.py):
  all                    everything (AI2: none)
  experts                routed experts only (AI2: routed)
  experts+shared         routed + shared experts (AI2: routed_shared)
  experts+shared+router  + router rows and router vectors (AI2: routed_shared_router)
With `experts_of` (a plan's kept ids per layer), expert rows and router rows are limited to the plan's
experts: "train only this domain's experts inside the full model".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from emo_prune.arch import MoEArchitecture
from emo_prune.common.constants import TRAIN_MODES
from emo_prune.errors import TrainingError
from emo_prune.select.plan import Kept


@dataclass
class TrainableSet:
    """name -> None (the whole tensor trains) or the dim-0 rows that train; names not listed are frozen."""

    parts: dict[str, tuple[int, ...] | None] = field(default_factory=dict)
    trainable: int = 0  # parameters that train (rows counted, not whole tensors)
    total: int = 0

    def summary(self) -> dict[str, int]:
        return {"trainable_parameters": self.trainable, "total_parameters": self.total, "tensors": len(self.parts)}


def _rows(layout_ids: Sequence[int], allowed: Sequence[int] | None) -> tuple[int, ...]:
    return tuple(sorted(set(layout_ids) if allowed is None else set(layout_ids) & set(allowed)))


def trainable_set(
    model: torch.nn.Module, arch: MoEArchitecture, mode: str, experts_of: Kept | None = None, router: bool = False
) -> TrainableSet:
    """The parameters `mode` trains in `model` (named as in memory), limited to `experts_of` when given.

    `router` adds the router rows of the trained experts to the `experts` / `experts+shared` modes (the
    `--router` flag of expert-only training); `experts+shared+router` includes them anyway."""
    if mode not in TRAIN_MODES:
        raise TrainingError(f"--train {mode!r} is not one of {', '.join(TRAIN_MODES)}")
    if mode == "all" and experts_of is not None:
        raise TrainingError("--experts-of limits expert training; it needs --train experts (or experts+shared...), not all")
    layouts = {lay.index: lay for lay in arch.layouts}
    shared = arch.family.shared_experts
    separate = tuple(shared.tensors) if shared is not None and shared.kind == "separate" else ()
    with_shared = mode != "experts"
    with_router = router or mode == "experts+shared+router"
    result = TrainableSet()
    for name, param in model.named_parameters():
        result.total += param.numel()
        role = arch.classify(name)
        layout = layouts.get(role.layer) if role.layer is not None else None
        allowed = None if experts_of is None or layout is None else experts_of[layout.index]
        if mode == "all":
            rows: tuple[int, ...] | None = None
        elif role.kind in ("fused", "router", "router_vector") and layout is not None:
            if role.kind != "fused" and not with_router:
                continue
            ids = layout.routed_ids + (layout.fixed_ids if with_shared else ())
            rows = _rows(ids, allowed)
            if not rows:
                continue
            if rows == tuple(range(param.shape[0])):
                rows = None  # the whole tensor: no hook needed
        elif role.kind == "expert" and layout is not None:  # a per-expert tensor of expert `role.expert`
            ids = layout.routed_ids + (layout.fixed_ids if with_shared else ())
            if role.expert not in _rows(ids, allowed):
                continue
            rows = None
        elif with_shared and separate and any(f".{prefix}" in f".{name}" for prefix in separate):
            rows = None  # a separate shared expert (Qwen2-MoE): whole tensors, never pruned
        else:
            continue
        result.parts[name] = rows
        result.trainable += param.numel() if rows is None else param[0].numel() * len(rows)
    return result


def apply_freeze(model: torch.nn.Module, trainable: TrainableSet) -> list[torch.utils.hooks.RemovableHandle]:
    """Set `requires_grad` from `trainable` and hook the partly trained tensors; returns the hooks' handles."""
    if trainable.trainable == 0:
        raise TrainingError(
            "nothing to train: the --train mode (and --experts-of plan) leaves no trainable parameter in this model; "
            "pick another --train mode, or a plan that keeps routed experts"
        )
    handles = []
    for name, param in model.named_parameters():
        rows = trainable.parts.get(name, ())
        param.requires_grad_(name in trainable.parts)
        if name in trainable.parts and rows is not None:
            mask = torch.zeros(param.shape[0], *([1] * (param.ndim - 1)), dtype=param.dtype, device=param.device)
            mask[list(rows)] = 1  # [E, 1, ...]: 1 on the rows that train
            handles.append(param.register_hook(lambda grad, mask=mask: grad * mask.to(grad.dtype)))
    return handles
