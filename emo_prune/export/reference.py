"""A plain torch forward pass computed from a GGUF file alone, the way llama.cpp's graph computes it.

It reads back what `export_gguf` wrote (gguf.GGUFReader; quantized tensors are dequantized) and follows
the graph of the file's architecture as `gguf_archs.json` describes it: RMSNorm pre-norm blocks, RoPE in
the file's layout (NORM: consecutive pairs, which the export's q/k permutation assumes), GQA causal
attention, softmax-then-top-k routing renormalized only where the graph renormalizes, the shared expert
added (deepseek) or sigmoid-gated (qwen2moe), leading dense layers. Equal to transformers within float
error when the export's mapping is right; tests compare both. Not fast: one sequence, fp32.

Shapes: S tokens, H hidden, D head dim, E experts, k picks, V vocab.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gguf import GGMLQuantizationType, GGUFReader, quants

from emo_prune.export.arch import GgufArch, arch_by_name


class GgufModel:
    def __init__(self, path: str | Path):
        reader = GGUFReader(str(path))
        self.fields = {name: field.contents() for name, field in reader.fields.items() if not name.startswith("tokenizer.")}
        self.arch = str(self.fields["general.architecture"])
        self.mapping: GgufArch = arch_by_name(self.arch)
        self.tensors: dict[str, torch.Tensor] = {}
        for t in reader.tensors:
            if t.tensor_type in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
                data = np.asarray(t.data, dtype=np.float32)
            else:
                data = quants.dequantize(t.data, t.tensor_type)
            self.tensors[t.name] = torch.from_numpy(np.array(data, dtype=np.float32)).reshape(
                tuple(reversed([int(d) for d in t.shape]))
            )

    def hp(self, key: str, default: Any = None) -> Any:
        return self.fields.get(f"{self.arch}.{key}", default)

    def logits(self, ids: list[int]) -> torch.Tensor:
        """[S, V] fp32 logits of one sequence."""
        W = self.tensors
        eps = float(self.hp("attention.layer_norm_rms_epsilon"))
        x = W["token_embd.weight"][torch.tensor(ids)]  # [S, H]
        for i in range(int(self.hp("block_count"))):
            blk = f"blk.{i}."
            x = x + self._attention(blk, _rms(x, W[blk + "attn_norm.weight"], eps), eps)
            h = _rms(x, W[blk + "ffn_norm.weight"], eps)
            x = x + (self._dense(blk, h) if blk + "ffn_gate.weight" in W else self._moe(blk, h))
        return _rms(x, W["output_norm.weight"], eps) @ W["output.weight"].T

    def _attention(self, blk: str, x: torch.Tensor, eps: float) -> torch.Tensor:
        W = self.tensors
        S = x.shape[0]
        heads, kv_heads = int(self.hp("attention.head_count")), int(self.hp("attention.head_count_kv"))
        D = int(self.hp("attention.key_length"))
        q, k, v = (F.linear(x, W[blk + f"attn_{p}.weight"], W.get(blk + f"attn_{p}.bias")) for p in "qkv")
        if self.mapping.qk_norm == "full":
            q, k = _rms(q, W[blk + "attn_q_norm.weight"], eps), _rms(k, W[blk + "attn_k_norm.weight"], eps)
        q, k, v = q.view(S, heads, D), k.view(S, kv_heads, D), v.view(S, kv_heads, D)
        if self.mapping.qk_norm == "head":
            q, k = _rms(q, W[blk + "attn_q_norm.weight"], eps), _rms(k, W[blk + "attn_k_norm.weight"], eps)
        theta = float(self.hp("rope.freq_base"))
        q, k = _rope(q, theta, self.mapping.rope), _rope(k, theta, self.mapping.rope)
        k = k.repeat_interleave(heads // kv_heads, dim=1)
        v = v.repeat_interleave(heads // kv_heads, dim=1)
        out = F.scaled_dot_product_attention(q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1), is_causal=True)
        return F.linear(out.transpose(0, 1).reshape(S, heads * D), W[blk + "attn_output.weight"])

    def _dense(self, blk: str, x: torch.Tensor, suffix: str = "") -> torch.Tensor:
        W = self.tensors
        gate, up, down = (W[f"{blk}ffn_{p}{suffix}.weight"] for p in ("gate", "up", "down"))
        return F.linear(F.silu(F.linear(x, gate)) * F.linear(x, up), down)

    def _moe(self, blk: str, x: torch.Tensor) -> torch.Tensor:
        W = self.tensors
        k = int(self.hp("expert_used_count"))
        probs = torch.softmax(F.linear(x, W[blk + "ffn_gate_inp.weight"]), dim=-1)  # [S, E]
        weights, ids = torch.topk(probs, k, dim=-1)  # [S, k]
        if self.mapping.renormalizes_topk:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        scale = float(self.hp("expert_weights_scale", 0.0) or 0.0)
        if scale not in (0.0, 1.0):
            weights = weights * scale
        gate, up, down = (W[f"{blk}ffn_{p}_exps.weight"] for p in ("gate", "up", "down"))  # [E, I, H] / [E, H, I]
        out = torch.zeros_like(x)
        for s in range(x.shape[0]):
            for slot in range(k):
                e = int(ids[s, slot])
                y = F.linear(F.silu(F.linear(x[s], gate[e])) * F.linear(x[s], up[e]), down[e])
                out[s] += weights[s, slot] * y
        if blk + "ffn_gate_shexp.weight" in W:
            shared = self._dense(blk, x, "_shexp")
            if blk + "ffn_gate_inp_shexp.weight" in W:  # qwen2moe: sigmoid(gate . x) scales the shared expert
                shared = shared * torch.sigmoid(x @ W[blk + "ffn_gate_inp_shexp.weight"])[:, None]
            out = out + shared
        return out


def _rms(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def _rope(x: torch.Tensor, theta: float, layout: str) -> torch.Tensor:
    """x [S, heads, D] rotated by position; "norm" pairs (2i, 2i+1), "neox" pairs (i, i + D/2)."""
    S, _, D = x.shape
    inv = theta ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)  # [D/2]
    angle = torch.arange(S, dtype=torch.float64)[:, None] * inv  # [S, D/2]
    cos, sin = angle.cos().float()[:, None, :], angle.sin().float()[:, None, :]
    if layout == "norm":
        a, b = x[..., 0::2], x[..., 1::2]
        return torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).reshape(x.shape)
    a, b = x[..., : D // 2], x[..., D // 2 :]
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


def reference_logits(path: str | Path, ids: list[int]) -> torch.Tensor:
    return GgufModel(path).logits(ids)
