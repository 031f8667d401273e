"""`emo-prune verify ORIGINAL_DIR PRUNED_DIR`: is the pruned model exactly the masked original?"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from emo_prune.cli.console import out
from emo_prune.cli.options import MODEL_HELP, JsonFlag, LayerwiseOption, MaxMemoryOption, ThreadsOption, memory_path, model_path
from emo_prune.common.constants import TOLERANCE
from emo_prune.memory.plan import MemoryOptions

if TYPE_CHECKING:
    from emo_prune.verify import VerifyReport


def verify_command(
    original_dir: Annotated[
        Path,
        typer.Argument(metavar="ORIGINAL", help="The model the pruned one was extracted from: " + MODEL_HELP, show_default=False),
    ],
    pruned_dir: Annotated[Path, typer.Argument(help="Folder written by `emo-prune extract`.", show_default=False)],
    prompts: Annotated[int, typer.Option("--prompts", min=1, help="How many built-in prompts to run.")] = 8,
    tolerance: Annotated[float, typer.Option("--tolerance", help="Largest allowed |logit difference| (fp32).")] = TOLERANCE,
    plan: Annotated[
        Path | None,
        typer.Option("--plan", help="The plan the build was cut with (default: the build's own manifest).", show_default=False),
    ] = None,
    layerwise: LayerwiseOption = None,
    max_memory: MaxMemoryOption = None,
    threads: ThreadsOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Compare the pruned model's logits with the original's, dropped experts' router logits at -inf.

    Both run in float32; exit code 1 when the max abs difference exceeds the tolerance. When the
    original does not fit in memory, layer by layer (each layer of both compared on the same inputs).

    Example: emo-prune verify builtin:emo-small emo-small-code-12.5pct
    """
    from emo_prune.verify import verify

    memory = MemoryOptions(memory_path(layerwise), max_memory)
    original_dir = model_path(original_dir)
    report = verify(original_dir, pruned_dir, num_prompts=prompts, tolerance=tolerance, memory=memory, plan_path=plan)
    out.result(report.to_dict(), lambda: render(report))
    report.raise_for_failure()


def render(report: VerifyReport) -> None:
    verdict = "[bold green]equal[/]" if report.passed else "[bold red]DIFFERENT[/]"
    out.print(
        f"max abs logit difference {report.max_abs_diff:.3g} over {len(report.per_prompt)} prompts "
        f"({report.tokens} tokens), tolerance {report.tolerance:g}: {verdict}"
    )
    if report.per_layer is not None:
        worst = max(range(len(report.per_layer)), key=lambda i: report.per_layer[i])
        out.print(f"layer by layer, same inputs: largest difference {report.per_layer[worst]:.3g} (layer {worst})")
