"""What an extracted folder says about itself: the manifest, AI2's pruning_metadata.json and a model card.

Nothing here carries a timestamp: the same source and plan give the same bytes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from emo_prune.arch import MoEArchitecture
from emo_prune.select.plan import Kept, Plan
from emo_prune.version import __version__

MANIFEST_FILE = "emo_prune.json"
AI2_METADATA_FILE = "pruning_metadata.json"
CARD_FILE = "README.md"


def manifest(plan: Plan, kept: Kept, extraction: dict[str, Any]) -> dict[str, Any]:
    """The plan (canonical order, this tool's version) plus what the extraction did."""
    data = replace(plan, experts_kept_per_layer=kept, tool_version=__version__).to_dict()
    data["extraction"] = extraction
    return data


def ai2_metadata(plan: Plan, kept: Kept, arch: MoEArchitecture) -> dict[str, Any]:
    """AI2's pruning_metadata.json keys, so their scripts read our outputs."""
    counts = [len(ids) for ids in kept if ids is not None]
    return {
        "experts_kept_per_layer": kept,
        "num_experts_kept": counts[0] if len(set(counts)) == 1 else [None if ids is None else len(ids) for ids in kept],
        "original_num_experts": [lay.num_experts for lay in arch.layouts],
        "method": plan.method or "manual",
        "keep": plan.keep,
        "budget": plan.budget,
        "domains": plan.domains,
        "source_model": (plan.source_model or {}).get("path"),
        "pruned_with": f"emo-prune {__version__}",
    }


def model_card(plan: Plan, kept: Kept, arch: MoEArchitecture, name: str, extraction: dict[str, Any]) -> str:
    counts = [len(ids) for ids in kept if ids is not None]
    totals = [lay.num_experts for lay in arch.layouts if not lay.is_dense]
    if len(set(counts)) == 1 and len(set(totals)) == 1:
        kept_line = f"{counts[0]} of {totals[0]} experts in each of {len(counts)} MoE layers"
    else:
        kept_line = f"{sum(counts)} of {sum(totals)} experts over {len(counts)} MoE layers (per layer: {counts})"
    identity = plan.source_model or {}
    lines = [
        "---",
        "library_name: transformers",
        "tags:",
        "- emo-prune",
        "- mixture-of-experts",
        "- pruned",
        "---",
        f"# {name}: {kept_line}",
        "",
        f"Expert subset of `{identity.get('path', '?')}` ({arch.family.name}, model_type `{arch.model_type}`), "
        f"written by emo-prune {__version__}.",
        "",
        "| | |",
        "|---|---|",
        f"| experts kept | {kept_line}; shared / always-active experts always kept |",
        f"| budget | keep {plan.keep or 'hand-written plan'}, {plan.budget or 'as listed'} |",
        f"| method | {plan.method or 'hand-written plan'} |",
        f"| domains | {', '.join(plan.domains) or '-'}{f' ({plan.combine})' if plan.combine else ''} |",
        f"| top-k | {extraction['num_experts_per_tok']['new']} (source: {extraction['num_experts_per_tok']['original']}) |",
        f"| source digest | sha256 {identity.get('digest', '?')} |",
        f"| profile digest | {plan.profile_digest or '-'} |",
        f"| size | {extraction['total_bytes']} bytes in {len(extraction['files'])} shard(s) |",
    ]
    for domain, values in sorted(plan.coverage.items()):
        kept_values = [v for v in values if v is not None]
        if kept_values:
            mean = sum(kept_values) / len(kept_values)
            lines.append(f"| routed mass kept, {domain} | min {min(kept_values):.3f}, mean {mean:.3f} |")
    lines += [
        "",
        "This model is exactly the source model with the dropped experts' router logits set to -inf: the kept",
        "router rows and experts are copied unchanged, and the softmax renormalizes over the survivors.",
        f"Check it with `emo-prune verify {identity.get('path', '?')} <this folder>`.",
        "",
        f"`{MANIFEST_FILE}` holds the full plan and provenance (kept ids per layer, old->new index map, coverage);",
        f"`{AI2_METADATA_FILE}` repeats the kept ids in AI2's format. Evaluate before relying on it: pruning",
        "keeps quality only on the domains the experts were selected for.",
        "",
    ]
    return "\n".join(lines)
