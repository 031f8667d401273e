"""The plan formats emo-prune writes and reads, as data (one module per format beside this file).

`export_from`: what `plan export` needs to write the format: "plan" (a kept set per layer), "profile"
(statistics or a full ranking, which a plan does not hold), or None (import only).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PlanFormat:
    name: str
    consumer: str
    reads: str  # the consumer's file, as its source describes it
    source: str  # where the description was read
    export_from: str | None
    module: str  # emo_prune.export.plans.<module>: write(...) and/or read(...)


FORMATS: dict[str, PlanFormat] = {
    f.name: f
    for f in (
        PlanFormat(
            "vllm",
            "vLLM (--moe-pruned-experts-profile, --riy-expert-profile)",
            '{"version": 1, "model", "workload", "pruned_experts": [[layer, expert], ...]}',
            "vllm-project/vllm PR #42613 (closed) and PR #37824 (open)",
            "plan",
            "vllm",
        ),
        PlanFormat(
            "vllm-ascend",
            "vLLM-Ascend (additional_config expert_list_file + expert_prune_ratio)",
            'JSONL, one line per MoE layer: {"<layer>": [every expert id, best first]}',
            "vllm-project/vllm-ascend PR #12525 (open)",
            "profile",
            "vllm_ascend",
        ),
        PlanFormat(
            "llama-expert-stats",
            "llama.cpp expert-profile / gguf_prune.py (--stats)",
            "expert_stats.json: per layer total_tokens, activation_counts, activation_frequency, "
            "avg_gate_weight, ean_mean, reap, never_activated",
            "ggml-org/llama.cpp PR #20454 (open)",
            "profile",
            "llama_stats",
        ),
        PlanFormat(
            "ai2",
            "AI2 EMO scripts (prune_hf_model.py and the selection scripts)",
            "pruning_metadata.json: experts_kept_per_layer, one list per layer",
            "allenai/EMO src/hf_training/easy_ep_prune.py, greedy_prune_layerwise.py",
            "plan",
            "ai2",
        ),
        PlanFormat(
            "llm-compressor",
            "llm-compressor REAPPruningModifier (its saliency report)",
            "per MoE layer: saliency, count, topk_weights, one value per expert",
            "vllm-project/llm-compressor PR #2703 / #2864 (REAPPruningModifier)",
            None,
            "llmcompressor",
        ),
    )
}
EXPORT_FORMATS = tuple(name for name, f in FORMATS.items() if f.export_from is not None)
IMPORT_FORMATS = tuple(FORMATS)


@dataclass
class Imported:
    """What a format's reader found: kept sets (the file says what to keep) or rankings (the file ranks
    experts and `--keep` decides how many). Per layer, None for dense layers."""

    kept: list[list[int] | None] | None = None
    rankings: list[list[int] | None] | None = None
