"""`emo-prune export BUILD --format gguf --dtype q8_0 --out FILE.gguf`: one file for llama.cpp and its kin."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emo_prune.cli.console import out
from emo_prune.cli.options import JsonFlag, ModelDir, ThreadsOption, model_path
from emo_prune.common.text import inert
from emo_prune.common.units import human_bytes
from emo_prune.export.formats import DTYPES, FORMATS


def export_command(
    model_dir: ModelDir,
    out_path: Annotated[Path, typer.Option("--out", help="File to write, e.g. build-q8_0.gguf.", show_default=False)],
    fmt: Annotated[str, typer.Option("--format", help=f"Output format: {' | '.join(FORMATS)}.")] = "gguf",
    dtype: Annotated[
        str,
        typer.Option(
            "--dtype", help=f"Weights: {' | '.join(DTYPES)} (k-quants need llama-cpp-python: pip install 'emo-prune[edge]')."
        ),
    ] = "f16",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace FILE if it exists.")] = False,
    threads: ThreadsOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Export a build (or any supported MoE model) to GGUF, exactly, streamed tensor by tensor.

    Refuses, with the reason, what llama.cpp cannot compute exactly (per-layer expert counts,
    several shared experts, always-active experts, a top-k normalization its graph lacks, ...).

    Example: emo-prune export code25 --out code25-q8_0.gguf --dtype q8_0
    """
    from emo_prune.errors import ExportError
    from emo_prune.export import ExportResult, export_gguf

    model_dir = model_path(model_dir)
    if fmt.lower() not in FORMATS:
        raise ExportError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    result: ExportResult = export_gguf(model_dir, out_path, dtype=dtype, overwrite=overwrite, threads=threads)
    out.result(result.to_dict(), lambda: render(result))


def render(result) -> None:  # noqa: ANN001 (ExportResult, imported lazily)
    shared = f" + {result.num_shared} shared" if result.num_shared else ""
    out.print(
        f"wrote {inert(result.path)}: {inert(result.arch)}, {result.dtype}, {human_bytes(result.bytes)}, "
        f"{result.num_experts}{shared} experts per MoE layer, top-{result.top_k}"
    )
    out.print(f"run it: llama-cli -m {inert(result.path)}")
