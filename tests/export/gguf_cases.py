"""The exportable tiny-model shapes and the transformers logits the GGUF files are held to."""

from __future__ import annotations

from pathlib import Path

# name -> (family, TinySpec fields): every case llama.cpp can compute exactly
EXPORTABLE = {
    "emo": ("emo", {}),  # one tail-shared expert -> *_shexp
    "emo_plain": ("emo", {"shared": 0}),  # no shared expert -> a zero shared expert
    "emo_dense_lead": ("emo", {"layers": 3, "experts_per_layer": [0, 8, 8]}),  # leading_dense_block_count 1
    "emo_fused": ("emo", {"storage": "fused"}),  # experts stored as gate_up_proj [E, 2I, H]
    "olmoe": ("olmoe", {"kv_heads": 4}),  # OLMoE has no GQA; llama.cpp's olmoe sizes k_norm [H]
    "mixtral": ("mixtral", {}),
    "qwen2_moe": ("qwen2_moe", {}),
    "qwen3_moe": ("qwen3_moe", {"norm_topk_prob": True}),  # llama.cpp's qwen3moe graph always renormalizes
    "qwen3_moe_tied": ("qwen3_moe", {"norm_topk_prob": True, "extra": {"tie_word_embeddings": True}}),  # no lm_head on disk
}


def hf_logits(model_dir: Path, ids: list[int]):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0]  # [S, V]
