"""Option types shared by the command modules (Typer `Annotated` style)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from emo_prune.common.constants import COMBINES, METHODS
from emo_prune.select.budget import BUDGETS

if TYPE_CHECKING:
    from emo_prune.memory.plan import MemoryOptions
    from emo_prune.select import SelectOptions

MODEL_HELP = (
    "builtin:NAME (builtin:emo-small, builtin:stdmoe-small, builtin:tiny-emo), a model folder, or a cached Hub id org/name."
)
ModelDir = Annotated[Path, typer.Argument(metavar="MODEL", help=MODEL_HELP, show_default=False)]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")]
DeviceOption = Annotated[str, typer.Option("--device", help="torch device: cpu, cuda, cuda:1, auto.")]
DtypeOption = Annotated[str, typer.Option("--dtype", help="Compute dtype: float32, bfloat16, float16, auto.")]
LayerwiseOption = Annotated[
    bool | None,
    typer.Option(
        "--layerwise/--whole",
        help="Force one decoder layer in memory at a time, or the whole model (default: the plan picks; eval: whole when it fits).",
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
    typer.Option(
        "--experts", min=1, help="Experts kept per layer, as a count (1 allowed); instead of --keep.", show_default=False
    ),
]
MethodOption = Annotated[str, typer.Option("--method", help=f"Scoring: {' | '.join(METHODS)} (greedy = AI2's layer by layer).")]
BudgetOption = Annotated[
    str, typer.Option("--budget", help=f"{' | '.join(BUDGETS)}: same count per layer, or one total (EMO only).")
]
CombineOption = Annotated[str, typer.Option("--combine", help=f"Several domains: {' | '.join(COMBINES)}.")]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed of --method random.")]
WithinOption = Annotated[Path | None, typer.Option("--within", help="Choose only among the experts this (larger) plan keeps.")]
CalibOption = Annotated[
    list[str] | None,
    typer.Option("--calib", help="greedy: calibration source (default: the profile's sources).", show_default=False),
]
SeqLenOption = Annotated[int, typer.Option("--seq-len", help="greedy: tokens per calibration document.")]
BatchOption = Annotated[int, typer.Option("--batch-size", help="greedy: documents per forward.")]
GreedyDeviceOption = Annotated[str, typer.Option("--device", help="greedy: torch device.")]


@dataclass(frozen=True)
class SelectionFlags:
    """The options that choose experts, shared by `select` and `extract` (an option group: cli/option_groups.py)."""

    keep: KeepOption = None
    experts: ExpertsOption = None
    profile: ProfileOption = None
    domain: DomainOption = None
    method: MethodOption = "mass"
    budget: BudgetOption = "uniform"
    combine: CombineOption = "union"
    seed: SeedOption = 0
    within: WithinOption = None
    calib: CalibOption = None
    seq_len: SeqLenOption = 512
    batch_size: BatchOption = 8
    device: GreedyDeviceOption = "cpu"

    def options(self, memory: MemoryOptions | None = None) -> SelectOptions:
        """The library's selection options; refuses --keep with --experts, neither, or a keep that cannot be."""
        from emo_prune.errors import PlanError
        from emo_prune.memory.plan import MemoryOptions
        from emo_prune.select import GreedySettings, Plan, SelectOptions
        from emo_prune.select.keep import Keep, experts_text

        keep = self.keep
        if keep is not None and self.experts is not None:
            raise PlanError("pass --keep or --experts, not both")
        if self.experts is not None:
            keep = experts_text(self.experts)
        if keep is None:
            raise PlanError("pass --keep (a fraction such as 0.125) or --experts (a count of experts per layer)")
        Keep.parse(keep)  # before any work: `--keep 1` fails at once
        greedy = GreedySettings(
            seq_len=self.seq_len, batch_size=self.batch_size, device=self.device, memory=memory or MemoryOptions()
        )
        return SelectOptions(
            keep=keep,
            domains=tuple(self.domain or ()),
            method=self.method,
            budget=self.budget,
            combine=self.combine,
            seed=self.seed,
            within=Plan.load(self.within) if self.within is not None else None,
            calib=tuple(self.calib or ()),
            greedy=greedy,
        )


def model_path(spec: Path | str) -> Path:
    """A MODEL argument -> its local folder: builtin:NAME and Hub ids resolve (emo_prune.models.builtin); a path
    is passed on as given, so the library's own errors name it; a path to nothing is refused now, before
    any work, with "did you mean builtin:NAME?" when it is close to a built-in's name."""
    from emo_prune.models.builtin import BUILTIN_PREFIX, is_hub_id, resolve_model

    text = str(spec)
    if text.startswith(BUILTIN_PREFIX) or is_hub_id(text) or not Path(text).expanduser().exists():
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
ThreadsOption = Annotated[
    int | None,
    typer.Option(
        "--threads",
        min=1,
        help="CPU threads for torch (default: EMO_PRUNE_THREADS, else the cores this process may use; OpenMP waits passively).",
        rich_help_panel="Runtime",
        show_default=False,
    ),
]
