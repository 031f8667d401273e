"""`emo-prune eval MODEL_DIR --tasks ... [--baseline ORIGINAL_DIR] --out RESULTS.json`: lm-eval scores."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from emo_prune.cli.console import out
from emo_prune.cli.options import (
    DeviceOption,
    DtypeOption,
    JsonFlag,
    LayerwiseOption,
    MaxMemoryOption,
    ThreadsOption,
    memory_path,
    model_label,
    model_path,
)
from emo_prune.cli.pool_options import PoolFlags
from emo_prune.cli.workspace import WorkspaceModel, workspace_build
from emo_prune.common.text import inert
from emo_prune.common.units import megabytes
from emo_prune.errors import EvalError

if TYPE_CHECKING:
    from emo_prune.eval import EvalReport

ImplOption = Annotated[
    str,
    typer.Option("--impl", help="Experts implementation: eager, emo_cpu, emo_triton, grouped_mm, or auto (fastest here)."),
]


def split_tasks(values: list[str]) -> tuple[str, ...]:
    """--tasks a,b --tasks c -> (a, b, c)."""
    return tuple(t.strip() for v in values for t in v.split(",") if t.strip())


def parse_limit(value: str | None) -> int | float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise EvalError(f"--limit {value!r} is not a number") from None
    return int(number) if number >= 1 and number.is_integer() else number


def eval_command(
    model_dir: WorkspaceModel = None,
    tasks: Annotated[
        list[str] | None,
        typer.Option(
            "--tasks",
            help="lm-eval task names, comma-separated (offline: emo_ppl_code, emo_math_mc, ..., emo_offline = all four). "
            "Default for a build: the offline tasks of its domains.",
            show_default=False,
        ),
    ] = None,
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="RESULTS.json; the Markdown table goes beside it (.md). Default: MODEL-eval.json here.",
            show_default=False,
        ),
    ] = None,
    baseline: Annotated[
        Path | None,
        typer.Option(
            "--baseline",
            help="The original model, evaluated with identical settings. Default for a build of a built-in model: that model.",
            show_default=False,
        ),
    ] = None,
    include_path: Annotated[
        list[Path] | None, typer.Option("--include-path", help="Extra folder of lm-eval task YAMLs (repeatable).")
    ] = None,
    num_fewshot: Annotated[int | None, typer.Option("--num-fewshot", help="Few-shot examples per prompt.")] = None,
    limit: Annotated[str | None, typer.Option("--limit", help="Documents per task (a number < 1 is a fraction).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Sequences per forward.")] = 8,
    max_length: Annotated[int | None, typer.Option("--max-length", help="Context length (default: the model's).")] = None,
    device: DeviceOption = "cpu",
    impl: ImplOption = "auto",
    dtype: DtypeOption = "auto",
    layerwise: LayerwiseOption = None,
    max_memory: MaxMemoryOption = None,
    pools: PoolFlags = PoolFlags(),
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace --out (and its .md) if they are emo-prune results.")
    ] = False,
    threads: ThreadsOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Score a model with lm-eval (offline tasks ship in recipes/tasks); with --baseline, side by side.

    Prints per task the score, its stderr, the delta and the retained fraction (for lower-is-better
    metrics such as bits_per_byte: retained = original / pruned). A model larger than memory runs with
    accelerate's disk offload (much slower; --layerwise forces it). With --pool every request runs
    within its own experts, chosen from its context (context -> answer tasks: --tasks emo_answer);
    --baseline then runs the baseline whole.

    Example: emo-prune eval emo-small-code-12.5pct  (a build: its domains' tasks, its built-in source as baseline)
    """
    from emo_prune.eval import EvalSettings, evaluate, write_report
    from emo_prune.eval.build_defaults import default_baseline, default_tasks
    from emo_prune.eval.harness import check_out_path
    from emo_prune.extract.card import read_manifest

    source = None
    if model_dir is None:  # in a workspace: its newest build, against the model it was cut from
        build = workspace_build()
        model_dir, source = Path(build.path), build.source
        out.note(f"model: {build.path} (this workspace's newest build, cut from {build.source}; pass MODEL to choose another)")
    model_arg, model_dir = model_dir, model_path(model_dir)
    manifest = read_manifest(model_dir)
    if not tasks:
        tasks = list(default_tasks(manifest))
        out.note(f"tasks: {', '.join(tasks)} (the offline tasks of the build's domains; --tasks to choose)")
    if baseline is None:
        found, recorded = default_baseline(manifest)
        if found is not None:
            baseline = Path(found)
            out.note(f"baseline: {found} (the build's source, by its shards' sha256; --baseline to choose)")
        elif source is not None:
            baseline = Path(source)
            out.note(f"baseline: {source} (the source this workspace recorded for the build; --baseline to choose)")
        elif recorded is not None:
            out.note(f"the build was cut from {recorded}; pass --baseline {recorded} to compare with it")
    baseline = None if baseline is None else model_path(baseline)
    if out_path is None:
        out_path = Path(f"{model_label(model_arg)}-eval.json")
    settings = EvalSettings(
        tasks=split_tasks(tasks),
        num_fewshot=num_fewshot,
        limit=parse_limit(limit),
        batch_size=batch_size,
        max_length=max_length,
        include_paths=tuple(str(p) for p in include_path or ()),
        impl=impl,
        dtype=dtype,
        device=device,
        memory=memory_path(layerwise),
        max_memory=max_memory,
        pool=pools.settings(),
        coverage_warn=pools.coverage_warn,
    )
    from emo_prune.io.lock import FolderLock
    from emo_prune.process.distributed import current_world

    main = current_world(device).is_main  # several processes: every rank has the scores, rank 0 writes
    lock = FolderLock(out_path) if main else None  # held from the start: a second writer fails at once
    with lock or contextlib.nullcontext():
        check_out_path(out_path, overwrite)
        report = evaluate(model_dir, settings, baseline_dir=baseline)
        if not main:
            return
        json_file, md_file = write_report(report, out_path, overwrite, lock=lock)
    data = {**report.to_dict(), "files": {"json": str(json_file), "markdown": str(md_file)}}
    out.result(data, lambda: render(report, json_file, md_file))


def render(report: EvalReport, json_file: Path, md_file: Path) -> None:
    out.print(report.table())
    settings = report.model.settings
    if report.model.requests:
        out.print(pool_summary(report.model.requests))
    if report.model.coverage:
        c = report.model.coverage
        out.print(
            f"coverage of the requests by the build's experts: mean {c['mean']:.1%}, min {c['min']:.1%} "
            f"({c['low']} below {c['warn_below']:.1%}; the build's calibration text: {c.get('calibration_coverage', float('nan')):.1%})"
        )
    out.print(
        inert(
            f"impl {settings['impl']}, dtype {settings['dtype']}, device {settings['device']}, "
            f"limit {settings['limit']}, few-shot {settings['num_fewshot']}"
        )
    )
    out.print(f"wrote {inert(json_file)} and {inert(md_file)}")


def pool_summary(requests: list[dict]) -> str:
    """One line over a pool-mode run's requests: mean resident expert bytes, cache hit rate, bytes read."""
    n = len(requests)
    hits = sum(r["cache"]["hits"] for r in requests)
    misses = sum(r["cache"]["misses"] for r in requests)
    resident = sum(r["resident_expert_bytes"] for r in requests) / n
    read = sum(r["cache"]["bytes_read"] for r in requests)
    rate = f"{hits / (hits + misses):.1%}" if hits + misses else "-"
    return (
        f"pools: {n} requests, {megabytes(resident, 2)} of experts resident per request, "
        f"cache hit rate {rate}, {megabytes(read)} read from disk"
    )
