"""F32 GGUF files at realistic widths, in llama.cpp, against transformers (the tests use tiny widths).

    python examples/experiments/gguf_exactness_large.py

Builds random EMO (hidden 2048, 16 heads / 8 KV heads of 128, 16 experts of width 1024, 1 shared,
top-4) and Qwen3-MoE (hidden 2048, 16 / 4 heads, 16 experts of width 768, top-4) models of 2 layers,
exports each to F32 and Q4_K_M (widths that fill llama.cpp's 256-wide k-quant blocks), and prints the
largest |logit difference| of the F32 file in llama.cpp (F32 KV cache) against transformers fp32 over a
96-token sequence, the top-1 agreement, and the file sizes. Needs llama-cpp-python (the `edge` extra).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

MODELS = {
    "emo": dict(layers=2, hidden=2048, heads=16, kv_heads=8, experts=16, top_k=4, expert_width=1024, shared=1, vocab_size=512),
    "qwen3_moe": dict(
        layers=2, hidden=2048, heads=16, kv_heads=4, experts=16, top_k=4, expert_width=768, norm_topk_prob=True, vocab_size=512
    ),
}


def main() -> None:
    from transformers import AutoModelForCausalLM

    from emo_prune.export import export_gguf
    from emo_prune.export.llamacpp import gguf_logits, open_gguf
    from emo_prune.testing import write_tiny_model

    torch.set_num_threads(2)
    ids = [(13 * i + 5) % 500 + 2 for i in range(96)]
    with tempfile.TemporaryDirectory() as tmp:
        for family, sizes in MODELS.items():
            model_dir = write_tiny_model(Path(tmp) / family, family, **sizes)
            model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
            with torch.no_grad():
                expected = model(torch.tensor([ids])).logits[0]
            del model
            f32 = export_gguf(model_dir, Path(tmp) / f"{family}-f32.gguf", dtype="f32")
            llm = open_gguf(f32.path, n_ctx=128, threads=2, exact=True)
            got = torch.from_numpy(gguf_logits(llm, ids))
            llm.close()
            q4 = export_gguf(model_dir, Path(tmp) / f"{family}-q4_k_m.gguf", dtype="q4_k_m", threads=2)
            diff = (got - expected).abs().max().item()
            top1 = (got.argmax(-1) == expected.argmax(-1)).float().mean().item()
            print(
                f"{family}: f32 {f32.bytes / 1e9:.2f} GB, max |logit diff| {diff:.2e} (logits up to "
                f"{expected.abs().max().item():.2f}), top-1 {top1:.0%}; q4_k_m {q4.bytes / 1e9:.2f} GB"
            )


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    main()
