"""Whole tiny models of every supported family: emo_cpu and emo_triton give eager's logits."""

from __future__ import annotations

import pytest
import torch
from moe_cases import MODEL_TOLERANCES
from transformers import AutoModelForCausalLM
from transformers.integrations.moe import ALL_EXPERTS_FUNCTIONS

import emo_prune.runtime  # noqa: F401  (registers the implementations)
from emo_prune.testing.factory import TinySpec, build_tiny_model, write_tiny_model

FAMILIES = ["olmoe", "mixtral", "qwen2_moe", "qwen3_moe", "emo"]  # emo: 11 routed + 1 shared expert
IMPLS = ["emo_cpu", "emo_triton"]


def tiny(family: str, dtype: torch.dtype) -> torch.nn.Module:
    spec = TinySpec(family=family, layers=2, hidden=64, experts=12, top_k=4, expert_width=48, vocab_size=128)
    model = build_tiny_model(spec, seed=0)
    with torch.no_grad():  # std 0.02 init makes the experts' share of the residual ~1e-3: make it ~0.3
        for module in model.modules():
            if hasattr(module, "gate_up_proj"):
                module.gate_up_proj.mul_(5.0)
                module.down_proj.mul_(5.0)
    return model.to(dtype)


def logits(model: torch.nn.Module, impl: str, input_ids: torch.Tensor) -> torch.Tensor:
    model.set_experts_implementation(impl)
    with torch.inference_mode():
        return model(input_ids=input_ids).logits.float()


@pytest.fixture
def calls(monkeypatch) -> dict[str, int]:
    """Counts the calls of each emo implementation, so a silent fallback to eager would fail."""
    counts = dict.fromkeys(IMPLS, 0)
    for name in IMPLS:
        forward = ALL_EXPERTS_FUNCTIONS[name]

        def counting(*args, _name=name, _forward=forward, **kwargs):
            counts[_name] += 1
            return _forward(*args, **kwargs)

        monkeypatch.setitem(ALL_EXPERTS_FUNCTIONS, name, counting)
    return counts


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("family", FAMILIES)
def test_same_logits_as_eager(family: str, dtype: torch.dtype, calls: dict[str, int]) -> None:
    model = tiny(family, dtype)
    prefill = torch.randint(0, 128, (2, 9), generator=torch.Generator().manual_seed(1))  # 18 tokens: sorted path
    decode = prefill[:1, :1]  # 1 token: the decode path
    for input_ids in (prefill, decode):
        want = logits(model, "eager", input_ids)
        for impl in IMPLS:
            torch.testing.assert_close(logits(model, impl, input_ids), want, **MODEL_TOLERANCES[dtype])
    assert calls == {"emo_cpu": 4, "emo_triton": 4}  # 2 MoE layers x 2 forwards each


def test_from_pretrained_selects_emo_triton(tmp_path, calls: dict[str, int]) -> None:
    # the name passes transformers' validation at load time because importing emo_prune.runtime registered it
    model_dir = write_tiny_model(tmp_path / "olmoe", "olmoe", experts=12, top_k=4, with_tokenizer=False)
    model = AutoModelForCausalLM.from_pretrained(model_dir, experts_implementation="emo_triton").eval()
    assert model.config._experts_implementation == "emo_triton"
    input_ids = torch.arange(10).view(1, 10)
    got = logits(model, "emo_triton", input_ids)
    assert calls["emo_triton"] == 2
    torch.testing.assert_close(got, logits(model, "eager", input_ids), **MODEL_TOLERANCES[torch.float32])
