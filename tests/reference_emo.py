"""An independent, deliberately plain implementation of the EMO forward pass, written from
docs/emo-checkpoint.md and the public structure of AI2's FlexOlmo-derived modeling code.

It shares no code with emo_prune: it reads a checkpoint folder's safetensors BY KEY NAME (AI2's
per-expert names), builds per-expert weight lists (like AI2's nn.ModuleList of MLPs), and loops over
tokens and experts. Tests compare the native model (and pruned checkpoints) against it.

Shapes: S sequence (one sequence, no batch), H hidden, V vocab, D head dim.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors.torch import load_file


def load_state(model_dir: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    model_dir = Path(model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(model_dir.glob("*.safetensors")):
        state.update(load_file(str(shard)))
    return config, {k: v.float() for k, v in state.items()}


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return weight * (x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps))


def rope(x: torch.Tensor, theta: float) -> torch.Tensor:
    """x [heads, S, D]; rotate-half convention."""
    S, D = x.shape[1], x.shape[2]
    inv_freq = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.float32) / D))
    angles = torch.arange(S, dtype=torch.float32)[:, None] * inv_freq[None, :]  # [S, D/2]
    cos = torch.cat([angles.cos(), angles.cos()], -1)
    sin = torch.cat([angles.sin(), angles.sin()], -1)
    rotated = torch.cat([-x[..., D // 2 :], x[..., : D // 2]], -1)
    return x * cos + rotated * sin


def silu(x: torch.Tensor) -> torch.Tensor:
    return x / (1 + torch.exp(-x))


def softmax(v: list[float]) -> list[float]:
    m = max(v)
    e = [math.exp(x - m) for x in v]
    s = sum(e)
    return [x / s for x in e]


def top(values: list[float], k: int, exclude: set[int] = frozenset()) -> list[int]:
    order = sorted((i for i in range(len(values)) if i not in exclude), key=lambda i: -values[i])
    return order[:k]


def route_token(logits: list[float], top_k: int, shared: int, always: list[int], norm: bool) -> list[tuple[int, float]]:
    """(expert, weight) pairs for one token, straight from the spec's three paths."""
    E = len(logits)
    k = min(top_k, E)
    if always:
        p = softmax(logits)
        picked = top(p, k - len(always), exclude=set(always)) + list(always)
        pairs = [(e, p[e]) for e in picked]
    elif shared > 0:
        routed_p = softmax(logits[: E - shared])
        shared_p = softmax(logits[E - shared :])
        picked = top(routed_p, k - shared)
        routed = [(e, routed_p[e]) for e in picked]
        if norm and routed:
            total = sum(w for _, w in routed)
            routed = [(e, w / total) for e, w in routed]
        return routed + [(E - shared + j, shared_p[j]) for j in range(shared)]
    else:
        p = softmax(logits)
        pairs = [(e, p[e]) for e in top(p, k)]
    if norm:
        total = sum(w for _, w in pairs)
        pairs = [(e, w / total) for e, w in pairs]
    return pairs


def layer_counts(config: dict) -> tuple[list[int], list[int], list[list[int]]]:
    L = config["num_hidden_layers"]
    counts = config.get("num_experts_per_layer") or [config["num_experts"]] * L
    shared_list = config.get("num_shared_experts_per_layer") or [min(config.get("num_shared_experts") or 0, c) for c in counts]
    always_pl = config.get("always_active_experts_per_layer")
    always = config.get("always_active_experts")
    always_list = [list(a or []) for a in always_pl] if always_pl else [list(always or []) if c else [] for c in counts]
    return counts, shared_list, always_list


@torch.no_grad()
def reference_logits(model_dir: Path, input_ids: list[int], expert_mask: dict[int, set[int]] | None = None) -> torch.Tensor:
    """Logits [S, V] for one sequence. `expert_mask[layer]` = expert ids whose router logit is set to -inf."""
    config, w = load_state(model_dir)
    H = config["hidden_size"]
    n_heads = config["num_attention_heads"]
    n_kv = config.get("num_key_value_heads") or n_heads
    D = config.get("head_dim") or H // n_heads
    eps = config["rms_norm_eps"]
    theta = (config.get("rope_parameters") or {}).get("rope_theta") or config.get("rope_theta")
    counts, shared_list, always_list = layer_counts(config)
    x = w["model.embed_tokens.weight"][torch.tensor(input_ids)]  # [S, H]
    S = x.shape[0]
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rms_norm(x, w[p + "pre_attention_layernorm.weight"], eps)
        q = (h @ w[p + "self_attn.q_proj.weight"].T).view(S, n_heads, D).transpose(0, 1)
        k = (h @ w[p + "self_attn.k_proj.weight"].T).view(S, n_kv, D).transpose(0, 1)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).view(S, n_kv, D).transpose(0, 1)
        q, k = rope(q, theta), rope(k, theta)
        k = k.repeat_interleave(n_heads // n_kv, 0)
        v = v.repeat_interleave(n_heads // n_kv, 0)
        scores = q @ k.transpose(1, 2) / math.sqrt(D)
        scores = scores + torch.triu(torch.full((S, S), float("-inf")), 1)
        attn = (torch.softmax(scores, -1) @ v).transpose(0, 1).reshape(S, n_heads * D)
        x = x + attn @ w[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, w[p + "pre_feedforward_layernorm.weight"], eps)
        if counts[i] == 0:

            def lin(name: str, t: torch.Tensor) -> torch.Tensor:
                out = t @ w[p + f"mlp.{name}.weight"].T
                return out + w[p + f"mlp.{name}.bias"] if p + f"mlp.{name}.bias" in w else out

            x = x + lin("down_proj", silu(lin("gate_proj", h)) * lin("up_proj", h))
            continue
        router = w[p + "mlp.gate.weight"]  # [E, H]
        moe = torch.zeros_like(x)
        for t in range(S):
            logits = (router @ h[t]).tolist()
            for e in (expert_mask or {}).get(i, ()):
                logits[e] = float("-inf")
            for e, weight in route_token(
                logits, config["num_experts_per_tok"], shared_list[i], always_list[i], bool(config.get("norm_topk_prob"))
            ):
                g = w[p + f"mlp.experts.{e}.gate_proj.weight"] @ h[t]
                u = w[p + f"mlp.experts.{e}.up_proj.weight"] @ h[t]
                moe[t] += weight * (w[p + f"mlp.experts.{e}.down_proj.weight"] @ (silu(g) * u))
        x = x + moe
    x = rms_norm(x, w["model.norm.weight"], eps)
    return x @ w["lm_head.weight"].T
