"""`emo-prune finetune MODEL --calib SOURCE ... --out DIR`: recovery fine-tuning of a build (or any model)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from emo_prune.cli.console import out
from emo_prune.cli.options import JsonFlag, ModelDir, ThreadsOption, model_path
from emo_prune.common.constants import (
    FINETUNE_BATCH,
    FINETUNE_LR,
    FINETUNE_WARMUP,
    TRAIN_MODES,
)

if TYPE_CHECKING:
    from emo_prune.train.finetune import FinetuneResult


def finetune_command(
    model_dir: ModelDir,
    calib: Annotated[
        list[str],
        typer.Option(
            "--calib",
            help="Training source, repeatable, as `profile --calib`: builtin:code|prose|math[:train], FILE, DIR, hf:NAME, "
            'task:NAME[:train] (the task\'s validation or training docs). JSONL {"context", "answer"} records and task: '
            "train on the answer tokens only.",
            show_default=False,
        ),
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to create for the fine-tuned model.", show_default=False)],
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Passes over the data.")] = 1,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", min=1, help="Token budget instead of whole epochs (stops after it).")
    ] = None,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate (linear warmup, then linear decay).")] = FINETUNE_LR,
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size",
            min=1,
            help="Sequences per optimizer step, all processes together (gradient accumulation makes it up).",
        ),
    ] = FINETUNE_BATCH,
    seq_len: Annotated[
        int | None, typer.Option("--seq-len", min=1, help="Tokens per sequence (default: the model's, at most 2048).")
    ] = None,
    warmup: Annotated[float, typer.Option("--warmup", help="Share of the steps with a linear warmup.")] = FINETUNE_WARMUP,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the data order and of the trainer.")] = 0,
    train: Annotated[
        str,
        typer.Option("--train", help=f"What trains: {' | '.join(TRAIN_MODES)} (AI2's freeze modes; shared = shared experts)."),
    ] = "all",
    experts_of: Annotated[
        Path | None,
        typer.Option("--experts-of", help="Plan file: train only its experts inside MODEL (with --train experts...)."),
    ] = None,
    router: Annotated[bool, typer.Option("--router", help="Also train the trained experts' router rows.")] = False,
    lora: Annotated[
        int | None, typer.Option("--lora", min=1, help="LoRA rank (peft); the adapter is merged into the weights on save.")
    ] = None,
    dtype: Annotated[str, typer.Option("--dtype", help="Training precision: float32, or bfloat16 (autocast).")] = "float32",
    device: Annotated[str, typer.Option("--device", help="torch device: cpu, cuda, auto.")] = "cpu",
    checkpoint_every: Annotated[
        int, typer.Option("--checkpoint-every", min=1, help="Optimizer steps between resumable checkpoints.")
    ] = 100,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUT if emo-prune wrote it before.")] = False,
    threads: ThreadsOption = None,  # applied once by cli.command.command, before any work
    json_output: JsonFlag = False,
) -> None:
    """Fine-tune MODEL (a build from `extract`, or any supported model) on training text; the output is a
    normal build: same plan and expert counts, manifest with the training settings, data digest and losses.

    Runs under `torchrun` / `accelerate launch` as it is (DDP). A killed run continues from its last
    checkpoint when rerun with the same arguments.

    Example: emo-prune finetune emo-small-math-12.5pct --calib builtin:math:train --out emo-small-math-12.5pct-ft
    """
    from emo_prune.train.finetune import FinetuneSettings, finetune, world

    settings = FinetuneSettings(
        epochs=epochs,
        max_tokens=max_tokens,
        lr=lr,
        batch_size=batch_size,
        seq_len=seq_len,
        warmup=warmup,
        seed=seed,
        train=train,
        experts_of=None if experts_of is None else str(experts_of),
        router=router,
        lora=lora,
        dtype=dtype,
        device=device,
        checkpoint_every=checkpoint_every,
    )
    result = finetune(model_path(model_dir), list(calib), out_dir, settings, overwrite=overwrite)
    if world()[0] == 0:  # under torchrun, one report (rank 0 wrote the output)
        out.result(result.to_dict(), lambda: render(result))


def render(result: FinetuneResult) -> None:
    first, last = (result.losses[0]["loss"], result.losses[-1]["loss"]) if result.losses else (float("nan"),) * 2
    trained = result.trainable
    out.print(
        f"wrote {result.out_dir}: {result.steps} optimizer steps over {result.rows} sequences ({result.tokens:,} tokens), "
        f"loss {first:.4f} -> {last:.4f}, {trained['trainable_parameters']:,} of {trained['total_parameters']:,} parameters trained"
    )
    out.print(f"score it: emo-prune eval {result.out_dir} ...")
