"""Exactness IN llama.cpp: exported files loaded by llama-cpp-python match transformers.

F32 weights with an F32 KV cache (llama.cpp's default F16 cache alone moves logits by ~0.06): within
1e-3 and every top-1 equal, for EMO (one shared expert, none, a leading dense layer) and the other
families. Q8_0 on the bundled, trained emo-small: top-1 agreement >= 90% on held-out code. Needs
llama-cpp-python (the `dev` / `edge` extras install it; skipped without it, except in CI).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from gguf_cases import EXPORTABLE, hf_logits
from optional import require

require("llama_cpp")

from emo_prune.export import export_gguf  # noqa: E402
from emo_prune.export.llamacpp import gguf_logits, open_gguf  # noqa: E402

IDS = [5, 17, 200, 33, 2, 99, 411, 7, 64, 300, 12, 128, 1, 0, 450, 19]
BUNDLED = Path(__file__).resolve().parents[2] / "emo_prune" / "assets" / "models" / "emo-small"


def _llama_logits(path, ids, exact=True):
    llm = open_gguf(path, n_ctx=max(64, len(ids) + 1), threads=2, exact=exact)
    try:
        return torch.from_numpy(gguf_logits(llm, ids))
    finally:
        llm.close()


@pytest.mark.parametrize("case", sorted(EXPORTABLE))
def test_f32_file_in_llama_cpp_equals_transformers(case, export_zoo, tmp_path):
    path = export_gguf(export_zoo[case], tmp_path / f"{case}.gguf", dtype="f32").path
    expected = hf_logits(export_zoo[case], IDS)
    got = _llama_logits(path, IDS)
    assert (got - expected).abs().max().item() < 1e-3
    assert torch.equal(got.argmax(-1), expected.argmax(-1))


def _heldout_ids(limit_tokens=256):
    from transformers import AutoTokenizer

    from emo_prune.calib import load_documents

    tokenizer = AutoTokenizer.from_pretrained(str(BUNDLED))
    text = "\n".join(d.text for d in load_documents(["builtin:code:heldout"], seed=0)[:4])
    return tokenizer, tokenizer.encode(text, add_special_tokens=False)[:limit_tokens], text


def test_trained_model_exact_in_f32_and_q8_0_keeps_top1(tmp_path):
    _, ids, _ = _heldout_ids()
    expected = hf_logits(BUNDLED, ids)
    f32 = export_gguf(BUNDLED, tmp_path / "f32.gguf", dtype="f32").path
    got = _llama_logits(f32, ids)
    assert (got - expected).abs().max().item() < 1e-3
    assert torch.equal(got.argmax(-1), expected.argmax(-1))
    q8 = export_gguf(BUNDLED, tmp_path / "q8.gguf", dtype="q8_0").path
    agree = (_llama_logits(q8, ids, exact=False).argmax(-1) == expected.argmax(-1)).float().mean().item()
    assert agree >= 0.9


def test_llama_cpp_tokenizes_like_the_model_tokenizer(tmp_path):
    """The gpt2 / gpt-2 vocab keys make llama.cpp's own tokenizer (what llama-cli uses) match, token for token."""
    tokenizer, _, text = _heldout_ids()
    path = export_gguf(BUNDLED, tmp_path / "f16.gguf", dtype="f16").path
    llm = open_gguf(path, n_ctx=64)
    try:
        for sample in (text[:2000], *SAMPLES):
            assert llm.tokenize(sample.encode(), add_bos=False) == tokenizer.encode(sample, add_special_tokens=False)
    finally:
        llm.close()


@pytest.mark.parametrize("dtype", ["q4_k_m", "q6_k"])
def test_k_quants_through_llama_cpp(dtype, tmp_path):
    result = export_gguf(BUNDLED, tmp_path / f"{dtype}.gguf", dtype=dtype, threads=2)
    f16 = export_gguf(BUNDLED, tmp_path / "f16.gguf", dtype="f16")
    assert result.bytes < f16.bytes
    _, ids, _ = _heldout_ids(64)
    logits = _llama_logits(result.path, ids, exact=False)
    assert np.isfinite(logits.numpy()).all()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # the intermediate file is gone


SAMPLES = (
    "def f(x):\n    return x ** 2  # square\n\n\n",
    "Question: What is 17 + 25? Answer: 42. I'LL say 1234567 isn't 3.14159!",
    "naïve café — 東京 💡 tabs\tand   spaces  \r\n end",
)


def test_cl100k_style_tokenizer_matches_in_llama_cpp(export_zoo, tmp_path):
    """Byte-level BPE split by cl100k's regex (as OLMo-family tokenizers are) goes out as llama.cpp's `dbrx`."""
    import shutil

    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from emo_prune.export.tokenizer import CL100K
    from emo_prune.testing.tokenizer import SEED_TEXT

    model = tmp_path / "model"
    shutil.copytree(export_zoo["emo"], model)
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(CL100K), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=["<|endoftext|>", "<|pad|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    raw.train_from_iterator([SEED_TEXT] * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|endoftext|>", pad_token="<|pad|>")
    tokenizer.save_pretrained(str(model))
    path = export_gguf(model, tmp_path / "cl100k.gguf", dtype="f16").path
    from gguf import GGUFReader

    assert GGUFReader(path).fields["tokenizer.ggml.pre"].contents() == "dbrx"
    llm = open_gguf(path, n_ctx=64)
    try:
        for sample in SAMPLES:
            assert llm.tokenize(sample.encode(), add_bos=False) == tokenizer.encode(sample, add_special_tokens=False)
    finally:
        llm.close()


def test_lm_eval_scores_of_an_f32_file_equal_the_safetensors_model(tmp_path):
    """lm-eval through llama.cpp (rolling loglikelihood and multiple choice) scores as HFLM does."""
    from emo_prune.eval.harness import EvalSettings, evaluate_model
    from emo_prune.eval.llamacpp_lm import evaluate_gguf

    settings = EvalSettings(tasks=("emo_ppl_code", "emo_math_mc"), limit=4, batch_size=4, impl="eager")
    path = export_gguf(BUNDLED, tmp_path / "f32.gguf", dtype="f32").path
    hf = evaluate_model(BUNDLED, settings).to_dict()["tasks"]
    gguf = evaluate_gguf(path, BUNDLED, settings).to_dict()["tasks"]
    bpb = [t["emo_ppl_code"]["metrics"]["bits_per_byte"]["value"] for t in (hf, gguf)]
    assert abs(bpb[0] - bpb[1]) < 1e-3 * bpb[0]
    assert gguf["emo_math_mc"]["metrics"]["acc"]["value"] == hf["emo_math_mc"]["metrics"]["acc"]["value"]


def test_q8_0_moe_decodes_without_extra_buffers_and_the_default_comes_back(tmp_path, monkeypatch):
    """llama.cpp's AMX kernels crash on Q8_0 MoE files (llama.cpp issue 20824): on an AMX CPU `open_gguf`
    loads without extra buffer types. Forced on here, so every machine runs that path."""
    import llama_cpp

    from emo_prune.export import llamacpp

    monkeypatch.setattr(llamacpp, "cpu_has_amx", lambda: True)
    before = llama_cpp.llama_cpp.llama_model_default_params
    with llamacpp.without_extra_buffers(llama_cpp):
        assert llama_cpp.llama_cpp.llama_model_default_params().use_extra_bufts is False
    assert llama_cpp.llama_cpp.llama_model_default_params is before
    path = export_gguf(BUNDLED, tmp_path / "q8.gguf", dtype="q8_0").path
    logits = _llama_logits(path, IDS, exact=False)
    assert logits.shape == (len(IDS), 4096) and np.isfinite(logits.numpy()).all()
