"""`emo-prune pool-index MODEL [--calib SOURCE ...] --out FILE`: the pool index `--pool-index` looks up."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from emo_prune.cli.console import out
from emo_prune.cli.options import JsonFlag, ModelDir, ThreadsOption, model_label, model_path
from emo_prune.common.text import inert
from emo_prune.common.units import duration, human_count


def pool_index_command(
    model_dir: ModelDir,
    calib: Annotated[
        list[str] | None,
        typer.Option(
            "--calib",
            help="Calibration source, repeatable, as `profile --calib` (DOMAIN=SOURCE names its domain), or a JSONL "
            'file of {"context", "answer"} records (the requests you serve). Default: the built-in code, prose and math '
            "corpora's training split (the text the bundled models learned from).",
        ),
    ] = None,
    out_path: Annotated[
        Path | None,
        typer.Option("--out", help="Index file to write (default: MODEL.pool-index.safetensors here).", show_default=False),
    ] = None,
    max_pairs: Annotated[
        int | None, typer.Option("--max-pairs", min=1, help="Context -> answer pairs per domain at most.")
    ] = None,
    power: Annotated[
        float,
        typer.Option(
            "--power", help="Entries' router mass as the mean of p^a (1: EMO's rule; 2: tokens that commit weigh more)."
        ),
    ] = 1.0,  # pools.index.DEFAULT_POWER (not imported here: --help stays free of torch)
    mass_of: Annotated[
        str,
        typer.Option(
            "--mass-of",
            help="Tokens an entry's router mass averages over: document (its whole text, context + answer: EMO's pool "
            "rule) or answer (its answer alone).",
        ),
    ] = "document",  # pools.index.MASS_OF[0]
    seed: Annotated[int, typer.Option("--seed", help="Seed of the built-in corpora's sampling order.")] = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out (a pool index only).")] = False,
    threads: ThreadsOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Index calibration documents by how their contexts route, each with the router mass of its whole
    text (context + answer; --mass-of answer: the answer alone); then `generate` / `eval --pool P
    --pool-index FILE` runs each request in the experts its nearest indexed documents used (better
    than the context's own mass when a question routes unlike its answer, as math does).

    Example: emo-prune pool-index builtin:emo-small --out emo-small.pool-index.safetensors
    """
    from emo_prune.serve.index_build import DEFAULT_SOURCES, build_index
    from emo_prune.serve.index_file import INDEX_FILE

    sources = calib or list(DEFAULT_SOURCES)
    target = out_path or Path(f"{model_label(model_dir)}.pool-index.safetensors")
    from emo_prune.io.lock import FolderLock

    with FolderLock(target) as lock:  # held from the start: a second writer of the file fails at once
        INDEX_FILE.check_output(target, overwrite)
        started = time.perf_counter()
        index = build_index(model_path(model_dir), sources, power=power, mass_of=mass_of, max_pairs=max_pairs, seed=seed)
        index.save(target, overwrite=overwrite, lock=lock)
    result = {"index": str(target), "sources": sources, "seconds": round(time.perf_counter() - started, 2), **index.summary()}
    out.result(result, lambda: render(result))


def render(result: dict[str, Any]) -> None:
    domains = ", ".join(f"{inert(name)} {human_count(n)}" for name, n in result["domains"].items())
    out.print(
        f"[bold]pool index[/] {inert(result['index'])}: {result['entries']} context -> answer pairs ({domains}) in {duration(result['seconds'])}"
    )
    out.print(f"use it with: emo-prune generate MODEL --pool 0.125 --pool-index {inert(result['index'])} --prompt ...")
