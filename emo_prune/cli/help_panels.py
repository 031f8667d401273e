"""The panels `--help` groups options into, so a long help reads at 80 columns (issue 25: `eval --help`
was 158 lines with a 23-character description column).

One table, option name -> panel, for every command: an option means the same everywhere it appears,
except where a command uses a name for something else (BY_COMMAND). Options not listed stay under
Typer's "Options" panel (`--help`, and anything new until it is placed here).
"""

from __future__ import annotations

from typing import Any

SELECTION, CALIBRATION, TASKS, POOLS, OUTPUT, RUNTIME = "Selection", "Calibration", "Tasks", "Pools", "Output", "Runtime"

PANELS = {
    **dict.fromkeys(
        ("--keep", "--experts", "--profile", "--domain", "--method", "--budget", "--combine", "--seed", "--within", "--plan"),
        SELECTION,
    ),
    **dict.fromkeys(("--calib", "--max-tokens", "--seq-len", "--max-pairs", "--mass-of", "--power"), CALIBRATION),
    **dict.fromkeys(("--tasks", "--limit", "--num-fewshot", "--include-path", "--baseline"), TASKS),
    **dict.fromkeys(
        (
            "--pool",
            "--reselect-every",
            "--draft",
            "--draft-rounds",
            "--cache-budget",
            "--cache-policy",
            "--pool-power",
            "--pool-index",
            "--pool-neighbours",
            "--index-weight",
            "--coverage-warn",
        ),
        POOLS,
    ),
    **dict.fromkeys(
        ("--out", "--overwrite", "--json", "--max-shard-size", "--strict", "--target", "--top", "--plot", "--merge", "--set"),
        OUTPUT,
    ),
    **dict.fromkeys(
        (
            "--device",
            "--dtype",
            "--impl",
            "--layerwise",
            "--max-memory",
            "--offload-dir",
            "--batch-size",
            "--max-length",
            "--threads",
        ),
        RUNTIME,
    ),
}
# command name -> the options it uses differently: `profile --domain` chooses calibration text
BY_COMMAND = {"run": {"--domain": CALIBRATION, "--seed": CALIBRATION}}
# extract / select: --seq-len, --batch-size and --device only serve greedy selection's calibration
GREEDY = {"--seq-len": CALIBRATION, "--batch-size": CALIBRATION, "--device": CALIBRATION}
BY_COMMAND |= {"extract": GREEDY, "select": GREEDY}


def place_options(command: Any) -> None:
    """Give each option of `command` (a click command built by Typer) its panel, unless it has one."""
    special = BY_COMMAND.get(getattr(command, "name", None) or "", {})
    for param in getattr(command, "params", []):
        if param.param_type_name != "option" or getattr(param, "rich_help_panel", None):
            continue
        name = max(param.opts, key=len)
        panel = special.get(name) or PANELS.get(name)
        if panel is not None:
            param.rich_help_panel = panel
