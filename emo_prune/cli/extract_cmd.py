"""`emo-prune extract MODEL_DIR (--plan PLAN | --profile P --domain D --keep K) --out OUT_DIR`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from emo_prune.cli.console import out
from emo_prune.cli.options import JsonFlag, SelectionFlags, TargetOption, ThreadsOption, model_label, model_path
from emo_prune.cli.plans import check_plan_target, render_plan
from emo_prune.cli.workspace import WorkspaceModel, model_or_workspace, record_output, workspace_selection
from emo_prune.common.constants import DEFAULT_MAX_TOKENS, PROFILE_METHODS
from emo_prune.common.text import inert, plural
from emo_prune.common.units import human_bytes
from emo_prune.errors import PlanError
from emo_prune.select.keep import keep_label

if TYPE_CHECKING:
    from emo_prune.extract import ExtractResult
    from emo_prune.select import Plan, SelectOptions


def extract_command(
    model_dir: WorkspaceModel = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Folder to create for the pruned model (default: MODEL-DOMAINS-KEEP here).", show_default=False
        ),
    ] = None,
    plan_path: Annotated[Path | None, typer.Option("--plan", help="Plan file from `emo-prune select`.")] = None,
    selection: SelectionFlags = SelectionFlags(),
    max_shard_size: Annotated[str, typer.Option("--max-shard-size", help="Largest output shard, e.g. 5GB, 500MB.")] = "5GB",
    dtype: Annotated[str, typer.Option("--dtype", help="Output weights: same, bfloat16, float16, float32.")] = "same",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUT_DIR if emo-prune wrote it before.")] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Refuse a source whose kept experts or router rows hold NaN/Inf.")
    ] = False,
    target: TargetOption = None,
    threads: ThreadsOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Write a smaller checkpoint with only the kept experts: streamed, atomic, loadable by transformers.

    The result equals the original with the dropped experts' router logits at -inf (check: `emo-prune verify`).

    Example: emo-prune extract builtin:emo-small --keep 0.125 --domain code  (profiles the domain first)
    """
    from emo_prune.extract import extract
    from emo_prune.io.sizes import parse_size
    from emo_prune.select.plan import Plan
    from emo_prune.select.selector import make_plan

    parse_size(max_shard_size, "--max-shard-size")  # a bad size is refused before any profiling
    model_arg, workspace = model_or_workspace(model_dir, "emo-prune extract builtin:emo-small --keep 0.125 --domain code")
    model_dir = model_path(model_arg)
    if plan_path is not None and (selection.keep is not None or selection.profile is not None or selection.domain):
        raise PlanError("pass either --plan, or --keep with --profile/--domain to select now, not both")
    if plan_path is None:
        selection = workspace_selection(model_arg, workspace, selection)
    if plan_path is not None:
        plan = Plan.load(plan_path)
    else:
        options = selection.options()
        if selection.profile is None and options.method in PROFILE_METHODS:
            _check_before_profiling(model_dir, model_arg, options, out_dir, overwrite)
            plan = _select_on_a_fresh_profile(model_dir, options, selection.calib, selection.device)
        else:
            plan = make_plan(model_dir, options, selection.profile)
        render_plan(plan)
    check_plan_target(target, model_dir, plan)
    if out_dir is None:
        out_dir = Path(f"{model_label(model_arg)}-{'+'.join(plan.domains) or 'all'}-{keep_label(plan.keep)}")
        out.note(f"writing the build to {out_dir}")
    result = extract(model_dir, plan, out_dir, max_shard_size=max_shard_size, dtype=dtype, overwrite=overwrite, strict=strict)
    record_output(model_arg, workspace, "build", out_dir, tuple(plan.domains))
    out.result(result.to_dict(), lambda: render(result, str(model_arg)))


def _check_before_profiling(
    model_dir: Path, model_arg: Path, options: SelectOptions, out_dir: Path | None, overwrite: bool
) -> None:
    """Everything that would refuse the build after profiling, refused before it: the budget (keep vs
    top-k, method and budget names) and the output folder (exists without --overwrite, not ours, ...)."""
    from emo_prune.io import Checkpoint
    from emo_prune.io.atomic import AtomicFolder
    from emo_prune.select.selector import check_selection

    check_selection(Checkpoint.open(model_dir).architecture, options)
    if out_dir is None and options.domains:
        out_dir = Path(f"{model_label(model_arg)}-{'+'.join(options.domains)}-{keep_label(options.keep)}")
    if out_dir is not None:
        AtomicFolder(out_dir, overwrite=overwrite, protect=[model_dir])  # its checks only; nothing is created


def _select_on_a_fresh_profile(model_dir: Path, options: SelectOptions, calib: list[str] | None, device: str) -> Plan:
    """No --profile: profile the model on --calib, else on each --domain's built-in calibration split, then select."""
    from emo_prune.calib import builtin_calibration
    from emo_prune.models.loading import resolve_device
    from emo_prune.profile.runner import ProfileSettings
    from emo_prune.select.fresh import select_on_fresh_profile

    resolve_device(device)  # a device that cannot be used is the one line, before the note below
    sources = list(calib) if calib else builtin_calibration(options.domains)
    out.note(
        f"no --profile given: profiling on {', '.join(sources)} first ({DEFAULT_MAX_TOKENS:,} tokens per domain, "
        f"as `emo-prune profile`; save one with `emo-prune profile` and pass it as --profile to reuse it)"
    )
    return select_on_fresh_profile(model_dir, sources, options, ProfileSettings(max_tokens=DEFAULT_MAX_TOKENS, device=device))


def render(result: ExtractResult, original: str = "<original>") -> None:
    counts = sorted({c for c in result.kept_counts if c is not None})
    kept = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]} (per layer)"
    k = result.num_experts_per_tok
    size = f"{human_bytes(result.total_bytes)} in {plural(len(result.files), 'shard')}"
    out.print(f"wrote {inert(result.out_dir)}: {kept} expert{'' if kept == '1' else 's'} per MoE layer, {size}")
    out.print(f"top-k {k['new']}" + ("" if k["new"] == k["original"] else f" (clamped from {k['original']})"))
    for key, change in result.config_changes.items():
        out.print(inert(f"  config {key}: {change['from']} -> {change['to']}"))  # config values
    out.print(f"check it: emo-prune verify {inert(original)} {inert(result.out_dir)}")
