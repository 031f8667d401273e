"""`plan export` and `plan import`: a plan or profile to another tool's file, another tool's file to a plan.

export  PLAN (+ the model, for its layer sizes) -> vllm | ai2          (kept sets)
        PROFILE -> vllm-ascend (full rankings by --method) | llama-expert-stats (statistics)
        A plan cannot give a ranking or statistics, a profile cannot give kept sets (select one first):
        both are refused with one line that says what to pass instead.
import  FILE (+ the model) -> plan.json. Files that list kept / pruned experts give their sets; files
        that rank experts (vllm-ascend, llama-expert-stats, llm-compressor) need --keep, and the plan
        keeps the fixed experts plus the best routed ones, like `select` with a uniform budget.
The format of an imported file is found from its content unless --format names it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from emo_prune.arch import LayerLayout
from emo_prune.errors import PlanError
from emo_prune.export.plans import ai2, llama_stats, llmcompressor, vllm, vllm_ascend
from emo_prune.export.plans.files import check_output, parse_json, read_capped, write_export
from emo_prune.export.plans.registry import EXPORT_FORMATS, FORMATS, IMPORT_FORMATS, Imported
from emo_prune.io import Checkpoint, model_identity
from emo_prune.profile.store import PROFILE_FILE, Profile
from emo_prune.select.keep import Keep, keep_counts
from emo_prune.select.plan import Kept, Plan, canonical_order, dumps, validate_plan
from emo_prune.select.scores import PROFILE_METHODS


@dataclass
class ExportResult:
    out: Path
    format: str
    layers: int  # MoE layers written
    note: str | None = None  # what the consumer needs besides the file (vllm-ascend's additional_config)


def export_plan(
    source: str | Path,
    fmt: str,
    out: str | Path,
    *,
    model: str | Path | None = None,
    method: str = "mass",
    domains: tuple[str, ...] = (),
    keep: str | None = None,
    overwrite: bool = False,
) -> ExportResult:
    """Write `source` (a plan or a profile) as `fmt` to `out`, atomically."""
    if fmt not in EXPORT_FORMATS:
        raise PlanError(f"unknown --format {fmt!r} for export (known: {', '.join(EXPORT_FORMATS)})")
    source, out = Path(source), Path(out)
    check_output(out, overwrite)
    if not source.exists():
        raise PlanError(f"{source} not found (pass a plan .json or a profile .safetensors)")
    needs = FORMATS[fmt].export_from
    if PROFILE_FILE.recognise(source):
        if needs != "profile":
            raise PlanError(
                f"--format {fmt} lists kept experts, which a profile does not choose: make a plan with "
                f"`emo-prune select MODEL --profile {source} --keep K`, then export the plan"
            )
        text, note, layers = _from_profile(Profile.load(source), fmt, method, domains, keep)
    else:
        if needs != "plan":
            what = "every layer's full expert ranking" if fmt == "vllm-ascend" else "per-expert statistics"
            raise PlanError(f"--format {fmt} needs {what}, which a plan does not hold; export a profile instead")
        if model is None:
            raise PlanError("exporting a plan needs --model MODEL (a plan does not record each layer's expert count)")
        text, layers = _from_plan(Plan.load(source), fmt, Path(model))
        note = None
    write_export(out, text, overwrite)
    return ExportResult(out=out, format=fmt, layers=layers, note=note)


def _from_plan(plan: Plan, fmt: str, model: Path) -> tuple[str, int]:
    arch = Checkpoint.open(model).architecture
    kept = validate_plan(plan, arch)
    layers = sum(ids is not None for ids in kept)
    if fmt == "ai2":
        return dumps(ai2.write(plan, kept, arch)), layers
    name = Path(str((plan.source_model or {}).get("path") or model)).name
    workload = f"emo-prune {plan.method or 'manual'} keep {plan.keep} domains {','.join(plan.domains) or '-'}"
    return dumps(vllm.write(kept, list(arch.layouts), name, workload)), layers


def _from_profile(
    profile: Profile, fmt: str, method: str, domains: tuple[str, ...], keep: str | None
) -> tuple[str, str | None, int]:
    domains = domains or tuple(sorted(profile.domains))
    for d in domains:
        profile.require_domain(d)
    layouts = list(profile.layouts)
    layers = sum(not lay.is_dense for lay in layouts)
    if fmt == "llama-expert-stats":
        return dumps(llama_stats.write(profile, list(domains))), None, layers
    if method not in PROFILE_METHODS:
        raise PlanError(f"--method {method} does not rank from a profile (profile methods: {', '.join(PROFILE_METHODS)})")
    from emo_prune.select.selector import SelectOptions, layer_rankings

    options = SelectOptions(keep=keep or "1.0", domains=domains, method=method)
    candidates = [None if lay.is_dense else list(lay.routed_ids) for lay in layouts]
    rankings, _ = layer_rankings(layouts, options, profile, candidates)
    note = None
    if keep is not None:
        counts = {c for c in keep_counts(Keep.parse(keep), layouts) if c is not None}
        if len(counts) != 1:
            raise PlanError(f"--keep {keep} keeps {sorted(counts)} experts in different layers: {vllm_ascend.RULE}")
        ratio = vllm_ascend.prune_ratio(layouts, counts.pop())
        note = json.dumps({"expert_list_file": "<this file>", "expert_prune_ratio": round(ratio, 6)})
    return vllm_ascend.write(rankings, layouts), note, layers


# ---- import ------------------------------------------------------------------------------------
def detect(text: str, where: str) -> str:
    """The format of an imported file, from its content."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and all(line.lstrip().startswith("{") and line.rstrip().endswith("}") for line in lines[:3]):
        try:
            json.loads(text)
        except ValueError:
            return "vllm-ascend"  # several JSON objects, one per line
    data = parse_json(text, where)
    if isinstance(data, dict):
        if "pruned_experts" in data:
            return "vllm"
        if "experts_kept_per_layer" in data:
            return "ai2"
        entries = data.get("layers") if isinstance(data.get("layers"), (dict, list)) else data
        values = list(entries.values()) if isinstance(entries, dict) else list(entries)
        first = next((v for v in values if isinstance(v, dict)), {})
        if "activation_counts" in first or "ean_mean" in first:
            return "llama-expert-stats"
        if "saliency" in first:
            return "llm-compressor"
        if len(data) == 1 and isinstance(next(iter(data.values())), list):
            return "vllm-ascend"  # a one-layer JSONL file
    raise PlanError(f"cannot tell the format of {where}; pass --format ({', '.join(IMPORT_FORMATS)})")


def read_file(path: Path, fmt: str | None, layouts: list[LayerLayout]) -> tuple[str, Imported]:
    where = str(path)
    text = read_capped(path)
    fmt = fmt or detect(text, where)
    if fmt not in IMPORT_FORMATS:
        raise PlanError(f"unknown --format {fmt!r} for import (known: {', '.join(IMPORT_FORMATS)})")
    if fmt == "vllm-ascend":
        return fmt, vllm_ascend.read(text, layouts, where)
    reader = {"vllm": vllm, "ai2": ai2, "llama-expert-stats": llama_stats, "llm-compressor": llmcompressor}[fmt]
    return fmt, reader.read(parse_json(text, where), layouts, where)


def kept_from_rankings(layouts: list[LayerLayout], rankings: list[list[int] | None], keep: str) -> Kept:
    """Fixed experts plus the best routed ones of each ranking, as many as --keep says per layer."""
    counts = keep_counts(Keep.parse(keep), layouts)
    kept: Kept = []
    for lay, ranking, count in zip(layouts, rankings, counts):
        if ranking is None or count is None:
            kept.append(None)
            continue
        routed = [e for e in ranking if e not in set(lay.fixed_ids)]
        kept.append(canonical_order(lay, [*lay.fixed_ids, *routed[: count - len(lay.fixed_ids)]]))
    return kept


def import_plan(
    path: str | Path,
    model: str | Path,
    out: str | Path,
    *,
    fmt: str | None = None,
    keep: str | None = None,
    overwrite: bool = False,
) -> Plan:
    """A plan for `model` from another tool's file, written atomically to `out`."""
    path, out = Path(path), Path(out)
    check_output(out, overwrite)
    checkpoint = Checkpoint.open(model)
    arch = checkpoint.architecture
    layouts = list(arch.layouts)
    fmt, found = read_file(path, fmt, layouts)
    if found.kept is not None:
        if keep is not None:
            raise PlanError(f"--keep does not apply: a {fmt} file says which experts to keep")
        kept = found.kept
    else:
        if keep is None:
            raise PlanError(f"a {fmt} file ranks experts; pass --keep (a fraction such as 0.25, or a count) to choose how many")
        kept = kept_from_rankings(layouts, found.rankings or [], keep)
    plan = Plan(experts_kept_per_layer=kept, keep=keep, method=f"import:{fmt}", extra={"imported_from": path.name})
    plan.experts_kept_per_layer = validate_plan(plan, arch, where=str(path))
    plan.source_model = model_identity(checkpoint)
    plan.save(out, overwrite=overwrite)  # locked, atomic; replaces only a plan file, only with --overwrite
    return plan
