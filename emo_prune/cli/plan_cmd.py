"""`emo-prune plan export / import`: plans and profiles in the formats other tools read and write.

    emo-prune plan export PLAN --model MODEL --format vllm|ai2 --out FILE
    emo-prune plan export PROFILE --format vllm-ascend|llama-expert-stats [--method M] [--domain D] --out FILE
    emo-prune plan import FILE --model MODEL [--format F] [--keep K] --out plan.json

The formats and the sources they were read from: docs/plan-formats.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emo_prune.cli.console import out
from emo_prune.cli.options import JsonFlag, model_path
from emo_prune.common.constants import PROFILE_METHODS

EXPORT_HELP = "vllm | vllm-ascend | llama-expert-stats | ai2"
IMPORT_HELP = "vllm | vllm-ascend | llama-expert-stats | ai2 | llm-compressor (default: found from the content)"

OverwriteFlag = Annotated[bool, typer.Option("--overwrite", help="Replace the --out file if it exists.")]


def plan_export_command(
    source: Annotated[
        Path, typer.Argument(metavar="PLAN_OR_PROFILE", help="A plan .json or a profile .safetensors.", show_default=False)
    ],
    fmt: Annotated[str, typer.Option("--format", help=EXPORT_HELP, show_default=False)],
    out_path: Annotated[Path, typer.Option("--out", help="File to write.", show_default=False)],
    model: Annotated[
        str | None, typer.Option("--model", help="The plan's model (layer sizes); plans only.", show_default=False)
    ] = None,
    method: Annotated[str, typer.Option("--method", help=f"Ranking of a profile: {' | '.join(PROFILE_METHODS)}.")] = "mass",
    domain: Annotated[
        list[str] | None, typer.Option("--domain", help="Profile domains to rank / sum (default: all).", show_default=False)
    ] = None,
    keep: Annotated[
        str | None,
        typer.Option("--keep", help="vllm-ascend: also print the expert_prune_ratio that keeps K.", show_default=False),
    ] = None,
    overwrite: OverwriteFlag = False,
    json_output: JsonFlag = False,
) -> None:
    """Write a plan (vllm, ai2) or a profile (vllm-ascend, llama-expert-stats) as another tool's file.

    Example: emo-prune plan export code25.json --model builtin:emo-small --format vllm --out pruned_experts.json
    """
    from emo_prune.export.plans import export_plan

    result = export_plan(
        source,
        fmt,
        out_path,
        model=None if model is None else model_path(model),
        method=method,
        domains=tuple(domain or ()),
        keep=keep,
        overwrite=overwrite,
    )

    def human() -> None:
        out.print(f"{result.format} file written to {result.out} ({result.layers} MoE layers)")
        if result.note:
            out.print(f"vLLM-Ascend additional_config: {result.note}")

    out.result({"out": str(result.out), "format": result.format, "layers": result.layers, "note": result.note}, human)


def plan_import_command(
    source: Annotated[
        Path, typer.Argument(metavar="FILE", help="Another tool's plan, ranking or statistics file.", show_default=False)
    ],
    model_dir: Annotated[str, typer.Option("--model", help="The model the plan is for.", show_default=False)],
    out_path: Annotated[Path, typer.Option("--out", help="Plan file to write (JSON).", show_default=False)],
    fmt: Annotated[str | None, typer.Option("--format", help=IMPORT_HELP, show_default=False)] = None,
    keep: Annotated[
        str | None, typer.Option("--keep", help="Files that rank experts: fraction or count to keep.", show_default=False)
    ] = None,
    overwrite: OverwriteFlag = False,
    json_output: JsonFlag = False,
) -> None:
    """Make a plan from another tool's file (for `extract --plan`, `verify`, `eval`).

    Example: emo-prune plan import expert_stats.json --model builtin:emo-small --keep 0.25 --out plan.json
    """
    from emo_prune.export.plans import import_plan

    plan = import_plan(source, model_path(model_dir), out_path, fmt=fmt, keep=keep, overwrite=overwrite)
    out.result(
        {"plan": str(out_path), **plan.to_dict()},
        lambda: out.print(f"plan ({plan.method}) written to {out_path}: experts kept per layer {plan.kept_counts()}"),
    )
