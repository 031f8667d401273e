"""Option types shared by the command modules (Typer `Annotated` style)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emo_prune.constants import COMBINES, METHODS
from emo_prune.select.budget import BUDGETS

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


# ---- selection: `select`, and `extract` (which can select on the fly) ----------------------------
ProfileOption = Annotated[Path | None, typer.Option("--profile", help="Profile file made by `emo-prune profile`.")]
DomainOption = Annotated[
    list[str] | None,
    typer.Option("--domain", help="Domain to keep experts for; repeat for several.", show_default=False),
]
KeepOption = Annotated[
    str | None,
    typer.Option(
        "--keep",
        help="Fraction of each layer's experts (0.25, 0.125, 1.0) or a count per layer greater than 1 (32); shared experts count.",
    ),
]
ExpertsOption = Annotated[
    int | None,
    typer.Option("--experts", min=1, help="Experts kept per layer, as a count (1 allowed); instead of --keep.", show_default=False),
]
MethodOption = Annotated[
    str, typer.Option("--method", help=f"Scoring: {' | '.join(METHODS)} (greedy = AI2's layer by layer).")
]
BudgetOption = Annotated[
    str, typer.Option("--budget", help=f"{' | '.join(BUDGETS)}: same count per layer, or one total (EMO only).")
]
CombineOption = Annotated[str, typer.Option("--combine", help=f"Several domains: {' | '.join(COMBINES)}.")]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed of --method random.")]
WithinOption = Annotated[
    Path | None, typer.Option("--within", help="Choose only among the experts this (larger) plan keeps.")
]
CalibOption = Annotated[
    list[str] | None,
    typer.Option("--calib", help="greedy: calibration source (default: the profile's sources).", show_default=False),
]
SeqLenOption = Annotated[int, typer.Option("--seq-len", help="greedy: tokens per calibration document.")]
BatchOption = Annotated[int, typer.Option("--batch-size", help="greedy: documents per forward.")]
GreedyDeviceOption = Annotated[str, typer.Option("--device", help="greedy: torch device.")]



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
