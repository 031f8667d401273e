"""Option types shared by the command modules (Typer `Annotated` style)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

MODEL_HELP = "builtin:NAME (builtin:emo-small, builtin:stdmoe-small, builtin:tiny-emo), a model folder, or a cached Hub id org/name."
ModelDir = Annotated[Path, typer.Argument(metavar="MODEL", help=MODEL_HELP, show_default=False)]
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


def model_path(spec: Path | str) -> Path:
    """A MODEL argument -> its local folder: builtin:NAME and Hub ids resolve (emo_prune.assets); a path
    is passed on as given, so the library's own errors name it."""
    from emo_prune.assets import BUILTIN_PREFIX, is_hub_id, resolve_model

    text = str(spec)
    if text.startswith(BUILTIN_PREFIX) or is_hub_id(text):
        return resolve_model(text)
    return Path(spec)


def model_label(spec: Path | str) -> str:
    """A short name of a MODEL argument for default output names: builtin:emo-small -> emo-small."""
    text = str(spec).rstrip("/")
    return text.removeprefix("builtin:").rsplit("/", 1)[-1] or "model"


def memory_path(layerwise: bool | None) -> str:
    """--layerwise / --whole / neither -> the memory plan's path name."""
    return {None: "auto", True: "layerwise", False: "whole"}[layerwise]
TargetOption = Annotated[
    str | None,
    typer.Option("--target", help="Refuse plans the target cannot carry: gguf (one expert count per layer, ...)."),
]
