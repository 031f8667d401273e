"""`emo-prune merge-back FULL BUILD --out DIR`: a fine-tuned build's experts written back into the full model."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from emo_prune.cli.console import out
from emo_prune.cli.options import MODEL_HELP, JsonFlag, ThreadsOption, model_path
from emo_prune.common.units import human_bytes

if TYPE_CHECKING:
    from emo_prune.train.merge_back import MergeResult


def merge_back_command(
    full_dir: Annotated[
        Path, typer.Argument(metavar="FULL", help="The model the build was cut from: " + MODEL_HELP, show_default=False)
    ],
    build_dir: Annotated[Path, typer.Argument(metavar="BUILD", help="A (fine-tuned) build of FULL.", show_default=False)],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to create for the merged full model.", show_default=False)],
    alpha: Annotated[
        float, typer.Option("--alpha", help="1 replaces FULL's experts; less averages: (1-a) FULL + a build.")
    ] = 1.0,
    router: Annotated[bool, typer.Option("--router", help="Also take the kept experts' router rows from the build.")] = False,
    shared: Annotated[
        bool, typer.Option("--shared", help="Also take the shared / always-active experts from the build.")
    ] = False,
    everything: Annotated[
        bool, typer.Option("--all", help="Take router rows, shared experts and every non-expert tensor too.")
    ] = False,
    max_shard_size: Annotated[str, typer.Option("--max-shard-size", help="Largest output shard, e.g. 5GB, 500MB.")] = "5GB",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUT if emo-prune wrote it before.")] = False,
    threads: ThreadsOption = None,  # applied once by cli.command.command, before any work
    json_output: JsonFlag = False,
) -> None:
    """Write FULL with BUILD's (fine-tuned) experts at their original ids, streamed shard by shard.

    With --alpha 1 --router --shared (or --all), the result with the dropped experts masked equals BUILD:
    check it with `emo-prune verify OUT BUILD`.

    Example: emo-prune merge-back builtin:emo-small emo-small-math-12.5pct-ft --out emo-small-math-merged
    """
    from emo_prune.train.merge_back import MergeOptions, merge_back

    options = MergeOptions(alpha=alpha, router=router, shared=shared, everything=everything)
    result = merge_back(model_path(full_dir), build_dir, out_dir, options, max_shard_size=max_shard_size, overwrite=overwrite)
    out.result(result.to_dict(), lambda: render(result, build_dir))


def render(result: MergeResult, build_dir: Path) -> None:
    out.print(
        f"wrote {result.out_dir}: {result.taken} tensors from the build, {result.copied} copied from the full model, "
        f"{human_bytes(result.total_bytes)}"
    )
    out.print(f"check it: emo-prune verify {result.out_dir} {build_dir}")
