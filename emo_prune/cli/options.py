"""Option types shared by the command modules (Typer `Annotated` style)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ModelDir = Annotated[
    Path,
    typer.Argument(help="Model folder in the Hugging Face layout (config.json + safetensors).", show_default=False),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")]
DeviceOption = Annotated[str, typer.Option("--device", help="torch device: cpu, cuda, cuda:1, auto.")]
DtypeOption = Annotated[str, typer.Option("--dtype", help="Compute dtype: float32, bfloat16, float16, auto.")]
LayerwiseOption = Annotated[
    bool | None,
    typer.Option(
        "--layerwise/--whole",
        help="Force one decoder layer in memory at a time, or the whole model (default: whole when it fits).",
        show_default=False,
    ),
]
MaxMemoryOption = Annotated[
    str | None,
    typer.Option("--max-memory", help="Memory budget such as 24GB (default: EMO_PRUNE_MAX_MEMORY, else free memory)."),
]


def memory_path(layerwise: bool | None) -> str:
    """--layerwise / --whole / neither -> the memory plan's path name."""
    return {None: "auto", True: "layerwise", False: "whole"}[layerwise]
TargetOption = Annotated[
    str | None,
    typer.Option("--target", help="Refuse plans the target cannot carry: gguf (one expert count per layer, ...)."),
]
