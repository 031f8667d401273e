"""`emo-prune profile`: per-domain expert usage of a model, and `profile merge` / `profile show`.

    emo-prune profile MODEL [--domain NAME ...] [--calib SOURCE ...] [--out PROFILE] [...]
    emo-prune profile merge A B ... --out C        (also: profile --merge A B ... --out C)
    emo-prune profile show PROFILE [--plot heatmap.png]

`profile` is a group whose default command is `run`: a first argument that is not a subcommand name
(`run`, `merge`, `show`) is a MODEL (or, with --merge, a profile), so `profile MODEL ...` works as is.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from typer.core import TyperGroup

from emo_prune.cli.console import out
from emo_prune.cli.options import (
    DeviceOption,
    DtypeOption,
    JsonFlag,
    LayerwiseOption,
    MaxMemoryOption,
    ThreadsOption,
    model_label,
    model_path,
)
from emo_prune.cli.workspace import model_or_workspace, record_output
from emo_prune.common.constants import DEFAULT_MAX_TOKENS, DEFAULT_PROFILE_TIME
from emo_prune.common.text import inert
from emo_prune.common.units import duration, human_count
from emo_prune.errors import ProfileError


class RunByDefault(TyperGroup):
    """Route `profile X ...` to `profile run X ...` unless X names a subcommand; `profile --help` is
    the help of `profile run` (its options are what a user looks for), which names the subcommands."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:  # noqa: ANN001 (click's signature)
        if args and args[0] not in self.commands:
            args = ["run", *args]
            ctx.meta["typed_command"] = ctx.command_path  # messages name `emo-prune profile`, as typed
        return super().parse_args(ctx, args)


def profile_command(
    inputs: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="MODEL",
            help="builtin:NAME, a model folder or a Hub id (default: this workspace's, see `emo-prune init`; with --merge: the profiles to sum).",
            show_default=False,
        ),
    ] = None,
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Profile file to write (default: MODEL-DOMAINS.profile.safetensors here).", show_default=False
        ),
    ] = None,
    calib: Annotated[
        list[str] | None,
        typer.Option(
            "--calib",
            help="Calibration source, repeatable: FILE.jsonl|.json|.txt|.md, DIR, builtin:code|prose|math[:train|calib|heldout], "
            "hf:NAME[:CONFIG][:SPLIT], task:LM_EVAL_TASK[:train]; prefix DOMAIN= to name its domain. "
            "Default: the built-in calibration split of each --domain (builtin:DOMAIN:calib).",
        ),
    ] = None,
    domain: Annotated[
        list[str] | None,
        typer.Option(
            "--domain",
            help="Domain to profile, repeatable (default: every domain of --calib); without --calib, a built-in corpus: code, prose, math.",
        ),
    ] = None,
    max_tokens: Annotated[
        int,
        typer.Option(
            "--max-tokens",
            help=f"Tokens per domain (documents in source order); 0 = no limit. The default is shared with extract and recipes: {DEFAULT_PROFILE_TIME}.",
        ),
    ] = DEFAULT_MAX_TOKENS,
    seq_len: Annotated[int | None, typer.Option("--seq-len", help="Window length; longer documents span several rows.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Rows per forward.")] = 8,
    device: DeviceOption = "auto",
    dtype: DtypeOption = "auto",
    layerwise: LayerwiseOption = None,
    max_memory: MaxMemoryOption = None,
    offload_dir: Annotated[
        Path | None, typer.Option("--offload-dir", help="With --layerwise: keep activations on disk here.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the built-in corpora's sampling order.")] = 0,
    merge: Annotated[bool, typer.Option("--merge", help="Sum the profiles given as arguments into --out.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out.")] = False,
    top: Annotated[int, typer.Option("--top", help="Top experts shown per layer.")] = 5,
    threads: ThreadsOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Profile MODEL on calibration text in one pass. Also: `profile merge A B --out C` sums profiles,
    `profile show P [--plot heatmap.png]` re-prints one.

    Example: emo-prune profile builtin:emo-small --domain code  (the built-in code corpus's calibration split)
    """
    from emo_prune.profile.merge import merge_profile_files
    from emo_prune.profile.report import build_report
    from emo_prune.profile.store import PROFILE_FILE

    if merge:
        if not inputs:
            raise ProfileError("--merge needs the profiles to sum: emo-prune profile merge A B --out C")
        if calib or domain:
            raise ProfileError("--merge sums existing profiles; it takes no --calib / --domain")
        if out_path is None:
            raise ProfileError("--merge needs --out, the profile to write")
        profile = merge_profile_files(inputs, out_path, overwrite=overwrite)
    else:
        if inputs and len(inputs) != 1:
            raise ProfileError(f"give exactly one MODEL (got {len(inputs)}); to sum profiles use --merge")
        model, workspace = model_or_workspace(inputs[0] if inputs else None, "emo-prune profile builtin:emo-small --domain code")
        inputs, model_dir = [model], model_path(model)  # a model that is not there fails first
        if out_path is None:
            out_path = Path(f"{model_label(inputs[0])}-{'+'.join(domain) if domain else 'all'}.profile.safetensors")
        PROFILE_FILE.check_output(out_path, overwrite)  # an existing --out: refused before torch loads
        from emo_prune.models.loading import resolve_device

        resolve_device(device)  # a device that cannot be used is the one line, before any note
        if not calib:
            from emo_prune.calib import builtin_calibration

            calib = builtin_calibration(domain or [])
            out.note(f"calibration text: {', '.join(calib)} (the built-in calibration split of each --domain)")
        from emo_prune.process.distributed import current_world  # torch from here on
        from emo_prune.profile.runner import ProfileSettings, profile_to_file

        settings = ProfileSettings(
            seq_len=seq_len,
            batch_size=batch_size,
            max_tokens=max_tokens or None,
            device=device,
            dtype=dtype,
            layerwise=layerwise,
            offload_dir=offload_dir,
            seed=seed,
            max_memory=max_memory,
        )
        start = time.perf_counter()
        profile = profile_to_file(model_dir, calib or [], out_path, domain, settings, overwrite=overwrite)
        if not current_world(device).is_main:
            return  # under `accelerate launch`, rank 0 writes and reports
        tokens = ", ".join(f"{name} {human_count(d.num_tokens)}" for name, d in sorted(profile.domains.items()))
        out.note(
            f"profiled {tokens} tokens in {duration(time.perf_counter() - start)} (--max-tokens {max_tokens or 'no limit'} per domain)"
        )
        record_output(model, workspace, "profile", out_path, tuple(sorted(profile.domains)))
    report = build_report(profile, top=top)
    out.result({"profile": str(out_path), "digest": profile.digest(), **report}, lambda: render(report, out_path))


def profile_merge_command(
    profiles: Annotated[list[Path], typer.Argument(metavar="PROFILE", help="Profiles of one model to sum.", show_default=False)],
    out_path: Annotated[Path, typer.Option("--out", help="Profile file to write (.safetensors).", show_default=False)],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out.")] = False,
    top: Annotated[int, typer.Option("--top", help="Top experts shown per layer.")] = 5,
    json_output: JsonFlag = False,
) -> None:
    """Sum profiles of the same model (one per corpus, per process or per machine) into one file.

    Example: emo-prune profile merge code.profile.safetensors math.profile.safetensors --out both.profile.safetensors
    """
    from emo_prune.profile.merge import merge_profile_files
    from emo_prune.profile.report import build_report

    profile = merge_profile_files(profiles, out_path, overwrite=overwrite)
    report = build_report(profile, top=top)
    out.result({"profile": str(out_path), "digest": profile.digest(), **report}, lambda: render(report, out_path))


def profile_show_command(
    path: Annotated[Path, typer.Argument(help="A profile file.", show_default=False)],
    plot: Annotated[Path | None, typer.Option("--plot", help="Also draw a layers x experts heatmap per domain.")] = None,
    top: Annotated[int, typer.Option("--top", help="Top experts shown per layer.")] = 5,
    json_output: JsonFlag = False,
) -> None:
    """Re-print a profile's report; --plot draws its heatmaps (PNG, SVG or PDF by suffix).

    Example: emo-prune profile show emo-small-code.profile.safetensors --plot heatmap.png
    """
    from emo_prune.profile.plot import plot_heatmaps
    from emo_prune.profile.report import build_report
    from emo_prune.profile.store import Profile

    profile = Profile.load(path)
    report = build_report(profile, top=top)
    data: dict[str, Any] = {"profile": str(path), "digest": profile.digest(), **report}
    if plot is not None:
        data["plot"] = str(plot_heatmaps(profile, plot))
    out.result(data, lambda: render(report, path, plot))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def render(report: dict[str, Any], path: Path, plot: Path | None = None) -> None:
    out.print(f"[bold]profile[/] {inert(path)}  ({inert(report['model'])}, {report['layers']} layers)")
    for name, d in report["domains"].items():
        fractions = list(d["coverage"])
        table = Table(title=f"{inert(name)}: {d['tokens']} tokens, {d['documents']} documents")
        table.add_column("layer", justify="right")
        for f in fractions:
            table.add_column(f"mass kept {float(f):.3g}", justify="right")
        table.add_column("entropy", justify="right")
        table.add_column("top experts (mean p)")
        for layer, tops in enumerate(d["top_experts"]):
            cells = [_pct(d["coverage"][f]["per_layer"][layer]) for f in fractions]
            entropy = d["entropy"][layer]
            tops_text = "dense" if tops is None else "  ".join(f"{e}:{100 * p:.1f}%" for e, p in tops)
            table.add_row(str(layer), *cells, "-" if entropy is None else f"{entropy:.2f}", tops_text)
        out.print(table)
        for f in fractions:
            c = d["coverage"][f]
            out.print(f"  {float(f):.3g} subset keeps {_pct(c['min'])} (min) / {_pct(c['mean'])} (mean) of the routed mass")
    if report["overlap"]:
        table = Table(title=f"overlap of the {report['overlap'][0]['fraction']:.3g} subsets (Jaccard of routed experts)")
        for col in ("domains", "min", "mean", "per layer"):
            table.add_column(col)
        for o in report["overlap"]:
            per_layer = " ".join("-" if j is None else f"{j:.2f}" for j in o["jaccard"])
            table.add_row(" / ".join(map(inert, o["domains"])), f"{o['min']:.2f}", f"{o['mean']:.2f}", per_layer)
        out.print(table)
    out.print(
        "mass kept = the share of the routed experts' router probability a subset keeps (a routing statistic); "
        "`emo-prune eval` measures the quality a build retains"
    )
    if plot is not None:
        out.print(f"heatmap written to {inert(plot)}")
