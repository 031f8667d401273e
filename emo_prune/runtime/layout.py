"""What the emo experts implementations need to know about a transformers Experts module.

Shapes: E experts, H hidden, I expert width.
  gate_up_proj [E, 2I, H], down_proj [E, H, I]           (is_transposed: [E, H, 2I], [E, I, H])
  gate/up halves of the 2I axis: [gate; up] (is_concatenated) or [g0, u0, g1, u1, ...].
The attributes come from transformers' `use_experts_implementation` decorator. Both emo
implementations compute `silu(gate) * up` without biases or a post-expert norm; anything else is
refused with the fix, rather than computed wrongly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from emo_prune.errors import RuntimeSetupError

_SILU_CLASSES = {"SiLU", "SiLUActivation"}  # torch.nn.SiLU, transformers.activations.SiLUActivation


@dataclass(frozen=True)
class ExpertStack:
    """One layer's E experts as the module stores them: gate_up [E, 2I, H], down [E, H, I] (transposed:
    [E, H, 2I], [E, I, H]); the 2I axis [gate; up] (concatenated) or interleaved. What every experts
    implementation (reference, emo_cpu, emo_triton) computes on."""

    gate_up: torch.Tensor
    down: torch.Tensor
    transposed: bool = False
    concatenated: bool = True

    @staticmethod
    def of(module: torch.nn.Module, implementation: str) -> ExpertStack:
        """A decorated Experts module's weights and layout; what the emo implementations cannot compute
        exactly is refused with the fix."""
        name = type(module).__name__
        fix = 'use experts_implementation="grouped_mm" (or "eager") for this model'
        if not getattr(module, "has_gate", True) or not hasattr(module, "gate_up_proj"):
            raise RuntimeSetupError(f"{implementation}: {name} has no fused gate_up_proj; {fix}")
        if getattr(module, "has_bias", False):
            raise RuntimeSetupError(f"{implementation}: {name} has expert biases, which it does not apply; {fix}")
        if getattr(module, "has_post_expert_norm", False):
            raise RuntimeSetupError(f"{implementation}: {name} has a post-expert norm; {fix}")
        gate_fn = getattr(type(module), "_apply_gate", None)
        if gate_fn is not None and getattr(gate_fn, "__name__", "") != "_default_apply_gate":
            raise RuntimeSetupError(f"{implementation}: {name} overrides _apply_gate; {fix}")
        if type(getattr(module, "act_fn", None)).__name__ not in _SILU_CLASSES:
            act = type(getattr(module, "act_fn", None)).__name__
            raise RuntimeSetupError(f"{implementation}: {name} uses activation {act}, only SiLU is fused; {fix}")
        return ExpertStack(
            module.gate_up_proj,
            module.down_proj,
            transposed=bool(getattr(module, "is_transposed", False)),
            concatenated=bool(getattr(module, "is_concatenated", True)),
        )

    def linear_views(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Views in linear() orientation, whatever the storage: ([E, 2I, H], [E, H, I]). No copies."""
        if self.transposed:
            return self.gate_up.transpose(1, 2), self.down.transpose(1, 2)
        return self.gate_up, self.down

    def split(self, gate_up_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[..., 2I] projection output -> (gate [..., I], up [..., I]) views."""
        return split_gate_up(gate_up_out, self.concatenated)


def split_gate_up(gate_up_out: torch.Tensor, concatenated: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """[..., 2I] projection output -> (gate [..., I], up [..., I]) views."""
    if concatenated:
        return gate_up_out.chunk(2, dim=-1)
    return gate_up_out[..., 0::2], gate_up_out[..., 1::2]


def check_inference(module: torch.nn.Module, hidden_states: torch.Tensor, implementation: str) -> None:
    """The emo implementations compute no gradients: refuse loudly instead of returning detached outputs."""
    if torch.is_grad_enabled() and (hidden_states.requires_grad or module.gate_up_proj.requires_grad):
        raise RuntimeSetupError(
            f"{implementation} is inference-only: run the model under torch.inference_mode() or "
            'torch.no_grad(), or train with experts_implementation="grouped_mm"'
        )


def interface_entry(implementation: str, compute: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """The entry of transformers' ExpertsInterface for `compute` (x, stack, ids, weights) -> y: called as
    (experts module, hidden_states [T, H], top_k_index [T, k], top_k_weights [T, k]) -> [T, H], it checks
    the module, then computes on its weights."""

    def forward(
        module: torch.nn.Module, hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor
    ) -> torch.Tensor:
        stack = ExpertStack.of(module, implementation)
        check_inference(module, hidden_states, implementation)
        return compute(hidden_states, stack, top_k_index, top_k_weights)

    forward.__name__ = forward.__qualname__ = f"{implementation}_experts_forward"
    forward.__doc__ = f"The `{implementation}` entry of transformers' ExpertsInterface."
    return forward
