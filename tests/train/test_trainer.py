"""The trainer end to end on a tiny model: deterministic, saves a plain EMO checkpoint, masks documents."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

import emo_prune  # noqa: F401
from emo_prune.io import Checkpoint
from emo_prune.train import TrainConfig, train, train_tokenizer

DOCS = [("code", f"def f{i}(x):\n    return x * {i} + {i % 7}\n") for i in range(40)] + [
    ("math", f"Question: {i} + {i + 3} = ?\nAnswer: {2 * i + 3}.") for i in range(40)
]
TINY = dict(
    layers=2,
    hidden=32,
    heads=2,
    experts=8,
    top_k=3,
    expert_width=16,
    vocab_size=300,
    seq_len=32,
    batch_size=4,
    steps=6,
    warmup=2,
    threads=1,
)


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer([text for _, text in DOCS], vocab_size=300)


@pytest.mark.parametrize("objective", ["emo", "standard"])
def test_same_seed_same_weights_and_a_loadable_emo_checkpoint(tmp_path, tokenizer, objective):
    cfg = TrainConfig(objective=objective, **TINY)
    records = [train(DOCS, tokenizer, cfg, tmp_path / name, log=lambda _: None) for name in ("a", "b")]
    first, second = (load_file(tmp_path / name / "model.safetensors") for name in ("a", "b"))
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    assert records[0]["tokens_seen"] == 6 * 4 * 32 and json.loads((tmp_path / "a" / "training.json").read_text())
    assert Checkpoint.open(tmp_path / "a").architecture.family.name == "emo"
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "a")  # no training routers left behind
    assert type(model).__name__ == "EmoForCausalLM" and not torch.are_deterministic_algorithms_enabled()


def test_restarting_positions_mask_attention_within_documents(tmp_path, tokenizer):
    # what the EMO objective relies on: a packed row with positions restarting at each document
    # attends within documents only, so the second document's logits equal those of it alone
    train(DOCS, tokenizer, TrainConfig(**TINY), tmp_path, log=lambda _: None)
    model = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    a = tokenizer(DOCS[0][1], add_special_tokens=False)["input_ids"]
    b = tokenizer(DOCS[45][1], add_special_tokens=False)["input_ids"]
    packed = torch.tensor([a + b])
    positions = torch.tensor([list(range(len(a))) + list(range(len(b)))])
    with torch.no_grad():  # without a KV cache, as the trainer runs (transformers detects packing only then)
        together = model(packed, position_ids=positions, use_cache=False).logits[0, len(a) :]
        alone = model(torch.tensor([b]), use_cache=False).logits[0]
        crossing = model(packed, use_cache=False).logits[0, len(a) :]  # plain positions: attention crosses
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(crossing, alone, atol=1e-3)
