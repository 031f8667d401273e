"""Registration of the emo experts implementations into transformers' ExpertsInterface.

transformers validates `experts_implementation` against "eager" plus the keys of
`ALL_EXPERTS_FUNCTIONS` (`PreTrainedModel.get_correct_experts_implementation`, transformers 5.23),
both at `from_pretrained(..., experts_implementation=...)` / model init and in
`set_experts_implementation`: a name must be registered before the model is built. Registration is
class-wide (`ExpertsInterface.register`), so it covers every model, and it is idempotent.
"""

from __future__ import annotations

import torch
from transformers.integrations.moe import ExpertsInterface

from emo_prune.runtime.cpu import emo_cpu_experts_forward
from emo_prune.runtime.triton_backend import emo_triton_experts_forward, triton_usable

IMPLEMENTATIONS = {
    "emo_cpu": emo_cpu_experts_forward,
    "emo_triton": emo_triton_experts_forward,
}


def register_experts_implementations() -> None:
    for name, forward in IMPLEMENTATIONS.items():
        ExpertsInterface.register(name, forward)


def default_experts_implementation(device: torch.device | str) -> str:
    """The fastest emo implementation for `device`: emo_triton on CUDA with triton, else emo_cpu."""
    device = torch.device(device)
    if device.type == "cuda" and triton_usable(device):
        return "emo_triton"
    if device.type == "cpu":
        return "emo_cpu"
    return "grouped_mm"  # other accelerators: transformers' own kernel
