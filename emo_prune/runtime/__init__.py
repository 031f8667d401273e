"""The compact MoE runtime: experts implementations for transformers models, and fast routing.

Importing this package registers two names into transformers' ExpertsInterface, usable with
`from_pretrained(..., experts_implementation=NAME)` or `model.set_experts_implementation(NAME)`:
  "emo_cpu"     CPU tensors, bf16/fp16/fp32 storage (cpu.py)
  "emo_triton"  CUDA tensors through the Triton kernels in kernels/ (triton_backend.py)
Both are inference-only and support the fused [gate; up] SiLU experts of OLMoE, Mixtral, Qwen2-MoE,
Qwen3-MoE and EMO (also interleaved or transposed weights). `route` is the routing entry point.
"""

from emo_prune.runtime.cpu import cpu_experts
from emo_prune.runtime.layout import ExpertStack
from emo_prune.runtime.reference import experts_reference
from emo_prune.runtime.registry import (
    IMPLEMENTATIONS,
    default_experts_implementation,
    register_experts_implementations,
)
from emo_prune.runtime.routing import dispatch_route
from emo_prune.runtime.triton_backend import triton_experts, triton_usable

register_experts_implementations()

__all__ = [
    "ExpertStack",
    "IMPLEMENTATIONS",
    "cpu_experts",
    "default_experts_implementation",
    "experts_reference",
    "register_experts_implementations",
    "dispatch_route",
    "triton_experts",
    "triton_usable",
]
