"""The plain torch reference of the experts computation: one (token, slot) pair at a time, in fp32.

Shapes: T tokens, k slots, E experts, H hidden, I expert width.
  x [T, H], the stack's gate_up [E, 2I, H], down [E, H, I] (stored layouts: layout.ExpertStack),
  ids [T, k] int, weights [T, k] -> y [T, H] in x's dtype,
  y[t] = sum_j weights[t, j] * down_e @ (silu(gate_e @ x_t) * (up_e @ x_t)), e = ids[t, j].
Slow on purpose: every faster path (emo_cpu, emo_triton) is tested against this. Ids outside [0, E)
(expert-parallel sentinels) contribute nothing.
"""

from __future__ import annotations

import torch

from emo_prune.runtime.layout import ExpertStack


def experts_reference(x: torch.Tensor, stack: ExpertStack, ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    gate_up, down = stack.linear_views()  # [E, 2I, H], [E, H, I]
    num_experts = gate_up.shape[0]
    y = torch.zeros(x.shape, dtype=torch.float32, device=x.device)  # [T, H]
    for t in range(x.shape[0]):
        for j in range(ids.shape[1]):
            e = int(ids[t, j])
            if not 0 <= e < num_experts:
                continue
            projected = gate_up[e].float() @ x[t].float()  # [2I]
            gate, up = stack.split(projected)  # [I], [I]
            hidden = torch.nn.functional.silu(gate) * up
            y[t] += weights[t, j].float() * (down[e].float() @ hidden)  # [H]
    return y.to(x.dtype)
