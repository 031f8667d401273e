"""Greedy (AI2's layer-by-layer) selection against physically pruned models, batching, --within nesting."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from emo_prune.errors import CalibrationError
from emo_prune.extract import extract
from emo_prune.io import Checkpoint
from emo_prune.models.loading import load_tokenizer, load_whole
from emo_prune.select import GreedySettings, Plan, SelectOptions, select_experts
from emo_prune.select.greedy import greedy_select


@dataclass(frozen=True)
class Doc:
    text: str
    domain: str
    source: str = "test"


DOCS = [
    Doc("def route(logits, top_k):\n    return softmax(logits).topk(top_k)", "code"),
    Doc("for i in range(10):\n    print(i * i)", "code"),
    Doc("class Expert:\n    def forward(self, x):\n        return x", "code"),
    Doc("Question: What is 17 + 25? Answer: 42.", "math"),
    Doc("Solve 3x + 4 = 19, so 3x = 15 and x = 5.", "math"),
]


def mean_routed_probability(model_dir, layer: int, docs) -> torch.Tensor:
    """Layer `layer`'s mean router probability over the docs' tokens, one document per forward, EMO split softmax."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    seen = []
    model.model.layers[layer].mlp.gate.register_forward_hook(lambda _m, _i, output: seen.append(output[0].double()))
    with torch.no_grad():
        for doc in docs:
            # the documented tokenization rule: the tokenizer's own special tokens, then EOS
            model(input_ids=torch.tensor([tokenizer(doc.text)["input_ids"] + [tokenizer.eos_token_id]]))
    logits = torch.cat(seen)  # [T, E], the last expert is the shared one
    probs = torch.cat([torch.softmax(logits[:, :-1], -1), torch.softmax(logits[:, -1:], -1)], -1)
    return probs.mean(0)


def test_greedy_equals_scoring_on_physically_pruned_models(tiny, tmp_path):
    model = tiny("emo", layers=3)
    arch = Checkpoint.open(model).architecture
    code = [d for d in DOCS if d.domain == "code"]
    scores = {}

    def choose(layer, by_domain, _weights):  # what selector does for one domain: top-3 routed + shared
        scores[layer] = by_domain["code"]
        return sorted(sorted(range(7), key=lambda e: (-float(by_domain["code"][e]), e))[:3]) + [7]

    loaded, tokenizer = load_whole(model), load_tokenizer(model)
    kept = greedy_select(loaded, tokenizer, arch, code, choose, GreedySettings(batch_size=2))
    for layer in range(3):
        # layers < `layer` physically pruned to greedy's choice by extraction, the rest complete
        partial = [kept[i] if i < layer else list(range(8)) for i in range(3)]
        folder = tmp_path / f"upto{layer}"
        extract(model, Plan(partial), folder)
        means = mean_routed_probability(folder, layer, code)  # new ids == original ids in the unpruned layer
        assert torch.allclose(scores[layer], means, atol=1e-6), f"layer {layer}"
    options = SelectOptions(keep="0.5", method="greedy", domains=("code",))
    plan = select_experts(arch, options, model_dir=model, documents=DOCS)
    assert plan.experts_kept_per_layer == kept and plan.method == "greedy"


def test_greedy_is_batch_invariant_and_nests_with_within(tiny):
    model = tiny("emo", layers=3)
    arch = Checkpoint.open(model).architecture
    run = lambda keep, batch, within=None: select_experts(  # noqa: E731
        arch,
        SelectOptions(
            keep=keep, method="greedy", domains=("code", "math"), within=within, greedy=GreedySettings(batch_size=batch)
        ),
        model_dir=model,
        documents=DOCS,
    )
    half = run("0.5", 1)
    assert run("0.5", 3).experts_kept_per_layer == half.experts_kept_per_layer
    # padding never counts: one document per batch and all in one padded batch give the same scores
    loaded, tokenizer = load_whole(model), load_tokenizer(model)
    recorded = {1: [], 5: []}
    for batch in recorded:

        def keep_all(layer, by_domain, _w, batch=batch):
            recorded[batch].append(by_domain)
            return list(range(8))

        greedy_select(loaded, tokenizer, arch, DOCS, keep_all, GreedySettings(batch_size=batch))
    for one, padded in zip(recorded[1], recorded[5]):
        assert all(torch.allclose(one[d], padded[d], atol=1e-6) for d in ("code", "math"))
    quarter = run("0.25", 2, within=half)
    for small, big in zip(quarter.experts_kept_per_layer, half.experts_kept_per_layer):
        assert set(small) < set(big) and len(small) == 2


def test_greedy_tokenizes_as_the_profiler_does(tiny):
    """A tokenizer that adds a BOS: greedy must score the same token stream as `profile` (and `mass`)."""
    from tokenizers.processors import TemplateProcessing

    from emo_prune.calib import Document
    from emo_prune.profile.batches import tokenize_documents
    from emo_prune.select.greedy import encode

    tokenizer = load_tokenizer(tiny("emo"))
    bos = tokenizer.eos_token_id  # any id that exists stands in for a BOS
    tokenizer._tokenizer.post_processor = TemplateProcessing(
        single=f"{tokenizer.eos_token} $A", special_tokens=[(tokenizer.eos_token, bos)]
    )
    profiled = tokenize_documents([Document(d.text, d.domain, d.source) for d in DOCS], tokenizer)
    greedy = encode(tokenizer, DOCS, seq_len=10_000)
    assert sorted(greedy) == sorted((doc.ids, doc.domain) for doc in profiled)
    assert all(ids[0] == bos and ids[-1] == tokenizer.eos_token_id for ids, _ in greedy)
    assert all(len(ids) <= 5 for ids, _ in encode(tokenizer, DOCS, seq_len=5))


def test_greedy_without_documents_is_a_clear_error(tiny):
    arch = Checkpoint.open(tiny("emo")).architecture
    with pytest.raises(CalibrationError, match="needs the model and calibration documents"):
        select_experts(arch, SelectOptions(keep="0.5", method="greedy"))
    with pytest.raises(CalibrationError, match="no calibration documents for domain 'law'"):
        options = SelectOptions(keep="0.5", method="greedy", domains=("law",))
        select_experts(arch, options, model_dir=tiny("emo"), documents=DOCS)
