"""What an extracted folder says about itself: the manifest, AI2's pruning_metadata.json and a model card.

Nothing here carries a timestamp: the same source and plan give the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from emo_prune.arch import MoEArchitecture
from emo_prune.common.text import plural
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


def source_name(identity: dict[str, Any]) -> str:
    """How the card names the source: `builtin:NAME` for a bundled model, else the folder's own name
    (a card travels with the build: it names no absolute local path)."""
    from emo_prune.models.builtin import BUILTIN_MODELS, BUILTIN_PREFIX

    path = Path(identity.get("path") or "?")
    for builtin in BUILTIN_MODELS.values():
        if builtin.bundled is not None and path == builtin.bundled.resolve():
            return BUILTIN_PREFIX + builtin.name
    return path.name


def loading_lines(arch: MoEArchitecture) -> list[str]:
    """What loads the build: emo-prune for EMO (transformers has no `emo` model type), stock transformers otherwise."""
    if arch.model_type == "emo":
        need = "`pip install emo-prune` and `import emo_prune` (it registers model_type `emo` with transformers):"
    else:
        need = "stock transformers (`import emo_prune` adds the `emo_cpu` / `emo_triton` experts implementations):"
    return [
        "## Loading",
        "",
        f"This folder loads with {need}",
        "",
        "```python",
        *(["import emo_prune  # noqa: F401"] if arch.model_type == "emo" else []),
        "from transformers import AutoModelForCausalLM",
        "",
        'model = AutoModelForCausalLM.from_pretrained("path/to/this/folder")',
        "```",
        "",
    ]


def front_matter(tag: str) -> list[str]:
    """The Hub's YAML header of every card emo-prune writes; `tag` says what was done ("pruned", "fine-tuned")."""
    return ["---", "library_name: transformers", "tags:", "- emo-prune", "- mixture-of-experts", f"- {tag}", "---"]


def model_card(plan: Plan, kept: Kept, arch: MoEArchitecture, name: str, extraction: dict[str, Any]) -> str:
    counts = [len(ids) for ids in kept if ids is not None]
    totals = [lay.num_experts for lay in arch.layouts if not lay.is_dense]
    if len(set(counts)) == 1 and len(set(totals)) == 1:
        kept_line = f"{counts[0]} of {totals[0]} experts in each of {len(counts)} MoE layers"
    else:
        kept_line = f"{sum(counts)} of {sum(totals)} experts over {len(counts)} MoE layers (per layer: {counts})"
    identity = plan.source_model or {}
    lines = [
        *front_matter("pruned"),
        f"# {name}: {kept_line}",
        "",
        f"Expert subset of `{source_name(identity)}` ({arch.family.name}, model_type `{arch.model_type}`), "
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
        f"| size | {extraction['total_bytes']} bytes in {plural(len(extraction['files']), 'shard')} |",
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
        f"Check it with `emo-prune verify {source_name(identity)} <this folder>`.",
        "",
        *loading_lines(arch),
        f"`{MANIFEST_FILE}` holds the full plan and provenance (kept ids per layer, old->new index map, coverage);",
        f"`{AI2_METADATA_FILE}` repeats the kept ids in AI2's format. Evaluate before relying on it: pruning",
        "keeps quality only on the domains the experts were selected for.",
        "",
    ]
    return "\n".join(lines)


def read_manifest(model_dir: Path) -> dict[str, Any] | None:
    """The build's emo_prune.json, or None for a folder emo-prune did not write."""
    path = Path(model_dir) / MANIFEST_FILE
    if path.is_symlink() or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
