"""Registration into transformers, the default choice per device, and the refusals with their fixes."""

from __future__ import annotations

import pytest
import torch
from moe_cases import make_problem
from transformers import OlmoeConfig
from transformers.integrations.moe import ALL_EXPERTS_FUNCTIONS
from transformers.models.olmoe.modeling_olmoe import OlmoeExperts

import emo_prune.runtime as runtime
import emo_prune.runtime.triton_backend as triton_module
from emo_prune.errors import RuntimeSetupError


def experts_module(impl: str) -> torch.nn.Module:
    config = OlmoeConfig(hidden_size=80, intermediate_size=96, num_experts=12, num_experts_per_tok=4)
    config._experts_implementation = impl
    module = OlmoeExperts(config)
    p = make_problem(1, 12, 4, torch.float32)
    with torch.no_grad():
        module.gate_up_proj.copy_(p.gate_up)
        module.down_proj.copy_(p.down)
    return module


def test_names_are_registered_on_import() -> None:
    # transformers validates experts_implementation against these keys when a model is built
    assert {"emo_cpu", "emo_triton"} <= set(ALL_EXPERTS_FUNCTIONS.keys())
    runtime.register_experts_implementations()  # idempotent
    assert ALL_EXPERTS_FUNCTIONS["emo_cpu"] is runtime.IMPLEMENTATIONS["emo_cpu"]


@pytest.mark.parametrize(
    "device,expected",
    [("cpu", "emo_cpu"), ("cuda", "emo_triton"), ("meta", "grouped_mm")],  # cuda: triton is installed here
)
def test_default_experts_implementation(device: str, expected: str) -> None:
    assert runtime.default_experts_implementation(device) == expected


def test_default_without_triton_on_cuda(monkeypatch) -> None:
    # a CUDA box without triton falls back to transformers' own GPU kernel
    monkeypatch.setattr("emo_prune.runtime.registry.triton_usable", lambda device: False)
    assert runtime.default_experts_implementation("cuda") == "grouped_mm"


@pytest.mark.parametrize("impl", ["emo_cpu", "emo_triton"])
def test_module_forward_matches_reference(impl: str) -> None:
    # the registered entry points read the layout flags off the module
    module = experts_module(impl)
    p = make_problem(9, 12, 4, torch.float32, seed=2)
    with torch.inference_mode():
        got = module(p.x, p.ids, p.weights)
    want = runtime.experts_reference(p.x, runtime.ExpertStack(module.gate_up_proj, module.down_proj), p.ids, p.weights)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    "attribute,value,message",
    [
        ("has_bias", True, "biases"),  # gpt-oss style biased experts
        ("has_post_expert_norm", True, "post-expert norm"),
        ("act_fn", torch.nn.GELU(), "GELU"),  # only SiLU is fused
    ],
)
@pytest.mark.parametrize("impl", ["emo_cpu", "emo_triton"])
def test_unsupported_experts_are_refused(impl: str, attribute: str, value, message: str) -> None:
    module = experts_module(impl)
    setattr(module, attribute, value)
    p = make_problem(2, 12, 4, torch.float32)
    with torch.inference_mode(), pytest.raises(RuntimeSetupError, match=message):
        module(p.x, p.ids, p.weights)


@pytest.mark.parametrize("impl", ["emo_cpu", "emo_triton"])
def test_training_is_refused(impl: str) -> None:
    # inference-only kernels must not hand back outputs without gradients
    module = experts_module(impl)
    p = make_problem(2, 12, 4, torch.float32)
    with pytest.raises(RuntimeSetupError, match="inference-only"):
        module(p.x, p.ids, p.weights)


def test_emo_triton_without_a_usable_device(monkeypatch) -> None:
    # no CUDA and no interpreter: the error names emo_cpu as the fix
    monkeypatch.setattr(triton_module, "triton_usable", lambda device: False)
    module = experts_module("emo_triton")
    p = make_problem(2, 12, 4, torch.float32)
    with torch.inference_mode(), pytest.raises(RuntimeSetupError, match="emo_cpu"):
        module(p.x, p.ids, p.weights)


def test_emo_cpu_refuses_other_devices() -> None:
    module = experts_module("emo_cpu").to("meta")
    x = torch.empty(2, 80, device="meta")
    ids = torch.zeros(2, 4, dtype=torch.long, device="meta")
    with torch.inference_mode(), pytest.raises(RuntimeSetupError, match="emo_triton"):
        module(x, ids, torch.empty(2, 4, device="meta"))
