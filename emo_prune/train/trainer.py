"""Train a small EMO-format MoE language model on offline documents, under the EMO or standard objective.

Both objectives share everything (data order, seed, sizes, steps, optimizer) except routing (see
objective.py) and attention: EMO masks attention within documents, standard attends across them.
The result is a plain EMO checkpoint (`model_type: "emo"`, AI2's key names) with its tokenizer and a
`training.json` record.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerFast

from emo_prune.models.emo import EmoConfig, EmoForCausalLM
from emo_prune.models.emo.modeling_emo import EmoTopKRouter
from emo_prune.train.objective import PoolRouter, RoutingContext, install_pool_routers
from emo_prune.train.packing import PackedBatch, batches, pack_rows, token_stream
from emo_prune.version import __version__


@dataclass
class TrainConfig:
    objective: str = "emo"  # "emo" | "standard"
    layers: int = 4
    hidden: int = 256
    heads: int = 4
    experts: int = 32  # including 1 shared expert (the last)
    top_k: int = 4  # including the shared expert
    expert_width: int = 128
    vocab_size: int = 4096
    seq_len: int = 256
    batch_size: int = 16
    steps: int = 1000
    lr: float = 3e-3
    warmup: int = 50
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    lb_coef: float = 0.1
    z_coef: float = 0.001
    pool_min: int = 4  # pool size P counts the shared expert (as in the paper's [8, 128] of 128)
    pool_max: int = 32
    seed: int = 0
    threads: int = 0  # 0 = torch default


def model_config(cfg: TrainConfig, tokenizer: PreTrainedTokenizerFast) -> EmoConfig:
    return EmoConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden,
        intermediate_size=cfg.expert_width,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        num_key_value_heads=cfg.heads,
        max_position_embeddings=max(4096, cfg.seq_len),
        num_experts=cfg.experts,
        num_experts_per_tok=cfg.top_k,
        num_shared_experts=1,
        norm_topk_prob=False,
        rope_theta=500000.0,
        rms_norm_eps=1e-6,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=False,
        output_router_logits=False,
        router_aux_loss_coef=cfg.lb_coef,
    )


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Linear warmup, cosine decay to 10%."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def training_batches(
    docs: Sequence[tuple[str, str]], tokenizer: PreTrainedTokenizerFast, cfg: TrainConfig
) -> tuple[list[tuple[str, list[int]]], Callable[[int], PackedBatch]]:
    """Tokenize once; return the tokenized docs and a function giving batch `i` (epochs reshuffle)."""
    encoded = [(domain, tokenizer(text, add_special_tokens=False)["input_ids"]) for domain, text in docs]
    encoded = [(d, ids) for d, ids in encoded if ids]
    state: dict[str, object] = {"epoch": -1, "iterator": None}

    def next_batch(_: int) -> PackedBatch:
        while True:
            iterator = state["iterator"]
            if iterator is not None:
                batch = next(iterator, None)  # type: ignore[call-overload]
                if batch is not None:
                    return batch
            state["epoch"] = int(state["epoch"]) + 1  # type: ignore[call-overload]
            order = list(encoded)
            random.Random(cfg.seed + int(state["epoch"])).shuffle(order)  # type: ignore[call-overload]
            stream = token_stream(order, tokenizer.eos_token_id)
            state["iterator"] = batches(pack_rows(stream, cfg.seq_len), cfg.batch_size)

    return encoded, next_batch


def train(
    docs: Sequence[tuple[str, str]],
    tokenizer: PreTrainedTokenizerFast,
    cfg: TrainConfig,
    out_dir: str | Path,
    log: Callable[[str], None] = print,
) -> dict:
    """Train and save; returns the training record written to `out_dir/training.json`."""
    if cfg.objective not in ("emo", "standard"):
        raise ValueError(f"objective must be 'emo' or 'standard', got {cfg.objective!r}")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    # same seed, threads and machine -> the same weights: threaded scatter-adds (embedding and
    # index_add backward) otherwise sum in a timing-dependent order
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        return _train(docs, tokenizer, cfg, out_dir, log)
    finally:
        torch.use_deterministic_algorithms(deterministic_before)


def _train(
    docs: Sequence[tuple[str, str]],
    tokenizer: PreTrainedTokenizerFast,
    cfg: TrainConfig,
    out_dir: str | Path,
    log: Callable[[str], None],
) -> dict:
    torch.manual_seed(cfg.seed)
    model = EmoForCausalLM(model_config(cfg, tokenizer))
    model.config._experts_implementation = "grouped_mm"
    model.train()
    context = RoutingContext(objective=cfg.objective)
    routers = install_pool_routers(model, context)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2 or "embed" in n]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.95),
    )
    _, next_batch = training_batches(docs, tokenizer, cfg)
    pool_rng = torch.Generator().manual_seed(cfg.seed + 1)
    history = []
    started = time.time()
    tokens_seen = 0
    for step in range(cfg.steps):
        batch = next_batch(step)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, step)
        context.lb_terms.clear()
        context.z_terms.clear()
        context.usage.clear()
        # Document ids unique within the batch, flattened to [T] for the routers.
        flat_docs = batch.doc_ids.reshape(-1)
        _, context.doc_ids = torch.unique(flat_docs, return_inverse=True)
        num_docs = int(context.doc_ids.max()) + 1
        # Routed pool size per document: P - 1 (the shared expert is always in the pool).
        context.pool_sizes = torch.randint(cfg.pool_min, cfg.pool_max + 1, (num_docs,), generator=pool_rng) - 1
        position_ids = batch.position_ids if cfg.objective == "emo" else None
        output = model(input_ids=batch.input_ids, labels=None, position_ids=position_ids, use_cache=False)
        logits = output.logits.float()  # [B, S, V]
        lm_loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.labels.reshape(-1))
        lb = torch.stack(context.lb_terms).mean()
        z = torch.stack(context.z_terms).mean()
        loss = lm_loss + cfg.lb_coef * lb + cfg.z_coef * z
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        tokens_seen += batch.input_ids.numel()
        if step % 25 == 0 or step == cfg.steps - 1:
            elapsed = time.time() - started
            usage = torch.stack(context.usage)  # [L, E_r]
            balance = (usage.max(dim=1).values / usage.mean(dim=1).clamp(min=1)).mean().item()
            record = {
                "step": step,
                "lm_loss": round(lm_loss.item(), 4),
                "lb": round(lb.item(), 4),
                "z": round(z.item(), 3),
                "max_over_mean_usage": round(balance, 2),
                "tokens_per_s": round(tokens_seen / max(elapsed, 1e-9)),
                "elapsed_s": round(elapsed, 1),
            }
            history.append(record)
            log(json.dumps(record))
    for router in routers:
        _restore_router(model, router)
    model.eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    record = {
        "tool_version": __version__,
        "train_config": asdict(cfg),
        "parameters": sum(p.numel() for p in model.parameters()),
        "tokens_seen": tokens_seen,
        "wall_seconds": round(time.time() - started, 1),
        "history": history,
    }
    (out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def _restore_router(model: torch.nn.Module, pool_router: PoolRouter) -> None:
    """Put a plain EmoTopKRouter back where a PoolRouter was (same weight), so the model routes as released."""
    for module in model.modules():
        if getattr(module, "gate", None) is pool_router:
            layout = module.layout
            router = EmoTopKRouter(model.config, layout)
            router.weight = pool_router.weight
            module.gate = router
