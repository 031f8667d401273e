"""The native EMO model against the independent spec reference (tests/reference_emo.py).

Every routing path of the spec, per-layer counts with a dense layer, every transformers experts
implementation, both on-disk layouts, and bit-identical save/load round trips.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

import emo_prune  # noqa: F401
from emo_prune.testing import write_tiny_model
from tests.reference_emo import reference_logits

TOKENS = [5, 17, 300, 42, 7, 99, 511, 3, 250, 64, 128]

ROUTING_CASES = {
    # the released path: one shared tail expert with its own softmax (weight exactly 1.0)
    "shared1": dict(experts=8, top_k=3, shared=1),
    # two shared experts: the shared block's softmax splits weight between them
    "shared2": dict(experts=8, top_k=4, shared=2),
    # no shared expert: plain top-k of one softmax
    "plain": dict(experts=8, top_k=2, shared=0),
    # plain with renormalized top-k weights
    "plain_norm": dict(experts=8, top_k=3, shared=0, norm_topk_prob=True),
    # shared path with norm_topk_prob: only the routed block is renormalized
    "shared_norm": dict(experts=8, top_k=3, shared=1, norm_topk_prob=True),
    # explicit always-active experts: one softmax over all, AA excluded from the pick
    "always_active": dict(experts=8, top_k=4, shared=0, always_active=[2, 6]),
    # always-active takes priority over shared experts when both are set
    "always_active_over_shared": dict(experts=8, top_k=3, shared=1, always_active=[0]),
    # per-layer counts: a dense first layer, then 12 and 5 experts (not powers of two)
    "per_layer_dense": dict(layers=3, experts=12, top_k=3, shared=1, experts_per_layer=[0, 12, 5]),
    # k == E in a layer: every expert active
    "k_equals_e": dict(layers=2, experts=6, top_k=4, shared=1, experts_per_layer=[6, 4]),
}


@pytest.fixture(scope="module", params=sorted(ROUTING_CASES))
def emo_dir(request, tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp(request.param), "emo", seed=3, **ROUTING_CASES[request.param])


def native_logits(model_dir, **kwargs) -> torch.Tensor:
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, **kwargs).eval()
    with torch.no_grad():
        return model(torch.tensor([TOKENS])).logits[0]


def test_native_matches_spec_reference(emo_dir):
    expected = reference_logits(emo_dir, TOKENS)
    torch.testing.assert_close(native_logits(emo_dir), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("impl", ["eager", "grouped_mm", "batched_mm"])
def test_experts_implementations_agree(emo_dir, impl):
    expected = reference_logits(emo_dir, TOKENS)
    torch.testing.assert_close(native_logits(emo_dir, experts_implementation=impl), expected, atol=1e-5, rtol=0)


def test_loads_without_python_files_and_reports_class(emo_dir):
    assert not list(emo_dir.glob("*.py"))
    model = AutoModelForCausalLM.from_pretrained(emo_dir)
    assert type(model).__name__ == "EmoForCausalLM"
    assert json.loads((emo_dir / "config.json").read_text())["model_type"] == "emo"


def test_save_load_round_trip_is_bit_identical(emo_dir, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(emo_dir)
    model.save_pretrained(tmp_path / "again")
    original = {k: v for f in emo_dir.glob("*.safetensors") for k, v in load_file(str(f)).items()}
    saved = {k: v for f in (tmp_path / "again").glob("*.safetensors") for k, v in load_file(str(f)).items()}
    assert saved.keys() == original.keys()  # AI2's per-expert key names come back
    for key, tensor in original.items():
        assert torch.equal(saved[key], tensor), key
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "again")
    for (k1, v1), (k2, v2) in zip(model.state_dict().items(), reloaded.state_dict().items(), strict=True):
        assert k1 == k2 and torch.equal(v1, v2)


def test_fused_on_disk_layout_loads_to_the_same_model(tmp_path):
    sizes = ROUTING_CASES["per_layer_dense"]
    per_expert = write_tiny_model(tmp_path / "per_expert", "emo", seed=5, **sizes)
    fused = write_tiny_model(tmp_path / "fused", "emo", seed=5, storage="fused", **sizes)
    assert any("experts.gate_up_proj" in k for f in fused.glob("*.safetensors") for k in load_file(str(f)))
    a = AutoModelForCausalLM.from_pretrained(per_expert).state_dict()
    b = AutoModelForCausalLM.from_pretrained(fused).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    torch.testing.assert_close(native_logits(fused), reference_logits(per_expert, TOKENS), atol=1e-5, rtol=0)


def test_sharded_checkpoint_loads(tmp_path):
    path = write_tiny_model(tmp_path / "sharded", "emo", seed=1, max_shard_size="60KB")
    assert len(list(path.glob("model-*.safetensors"))) > 2
    torch.testing.assert_close(native_logits(path), reference_logits(path, TOKENS), atol=1e-5, rtol=0)


def test_bfloat16_checkpoint_keeps_its_dtype(tmp_path):
    path = write_tiny_model(tmp_path / "bf16", "emo", seed=1, dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.dtype == torch.bfloat16
    with torch.no_grad():
        assert torch.isfinite(model(torch.tensor([TOKENS])).logits).all()


def test_padded_batch_matches_single_sequences(tiny_zoo):
    model = AutoModelForCausalLM.from_pretrained(tiny_zoo["emo"], dtype=torch.float32).eval()
    short = TOKENS[:6]
    ids = torch.tensor([TOKENS, short + [1] * (len(TOKENS) - len(short))])
    mask = torch.tensor([[1] * len(TOKENS), [1] * len(short) + [0] * (len(TOKENS) - len(short))])
    with torch.no_grad():
        batched = model(ids, attention_mask=mask).logits
        alone = model(torch.tensor([short])).logits[0]
    torch.testing.assert_close(batched[1, : len(short)], alone, atol=1e-5, rtol=0)


def test_generate_with_cache_equals_full_recompute(tiny_zoo):
    model = AutoModelForCausalLM.from_pretrained(tiny_zoo["emo"], dtype=torch.float32).eval()
    prompt = torch.tensor([TOKENS[:5]])
    generated = model.generate(prompt, max_new_tokens=6, do_sample=False, pad_token_id=1)
    sequence = prompt
    with torch.no_grad():
        for _ in range(6):
            next_token = model(sequence).logits[0, -1].argmax()
            sequence = torch.cat([sequence, next_token.view(1, 1)], dim=1)
    assert torch.equal(generated, sequence)


def test_router_logits_and_aux_loss(tiny_zoo):
    model = AutoModelForCausalLM.from_pretrained(tiny_zoo["emo"], dtype=torch.float32).eval()
    ids = torch.tensor([TOKENS])
    output = model(ids, labels=ids, output_router_logits=True)
    assert len(output.router_logits) == 2 and output.router_logits[0].shape == (len(TOKENS), 8)
    assert output.aux_loss is not None and output.aux_loss > 0
    plain = model(ids, labels=ids)
    assert output.loss > plain.loss  # the auxiliary loss is added to the LM loss
