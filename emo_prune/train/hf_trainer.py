"""The `Trainer` run of `finetune`: arguments, the fixed row order, checkpoints and progress through `events`.

Rows come in the order `data.training_rows` fixed (seeded shuffles per epoch, concatenated), read
sequentially: the trainer runs ONE pass over them (`max_steps` optimizer steps of `batch_size` rows).
Under several processes accelerate hands consecutive micro-batches to the processes in turn, so the rows
of optimizer step s are rows [s*B, (s+1)*B) whatever the process count; a resumed run skips the
micro-batches already seen and continues with the same RNG, optimizer and scheduler states.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback

from emo_prune import events
from emo_prune.common.units import per_second
from emo_prune.train.data import Example, collate
from emo_prune.train.finetune import world


class _Rows(torch.utils.data.Dataset):
    def __init__(self, rows: list[Example]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return {"input_ids": self.rows[i].input_ids, "labels": self.rows[i].labels}


class _InOrder(Trainer):
    """A Trainer that reads the rows in the order given (the order is data.py's, seeded there) and resumes
    the weights through emo-prune's loader."""

    def _get_train_sampler(self, *args: Any, **kwargs: Any) -> torch.utils.data.Sampler:
        return torch.utils.data.SequentialSampler(self.train_dataset)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        """A checkpoint's weights back into the model. transformers 5 saves stacked experts in the on-disk
        per-expert layout (`experts.{e}.gate_proj.weight`) and its resume path loads the state dict by name
        without strictness, so the fused in-memory experts silently kept the killed run's initial values (a
        resumed run diverged at its first step); `load_whole` reads either layout. Adapters (peft) resume as
        transformers does (tested: tests/train/test_finetune_resume.py)."""
        model = model if model is not None else self.model
        if hasattr(model, "peft_config"):  # a checkpoint holds the adapter alone, which transformers reloads right
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        from emo_prune.models.loading import load_whole

        saved = dict(load_whole(resume_from_checkpoint, torch.float32).named_parameters())
        with torch.no_grad():
            for name, param in model.named_parameters():
                param.copy_(saved[name].to(param.dtype))
        return None


class _Progress(TrainerCallback):
    """Loss and tokens/s of every optimizer step to `events.progress`; the losses kept for the manifest."""

    def __init__(self, bar: Any, task: int, step_tokens: list[int]):
        self.bar, self.task, self.step_tokens = bar, task, step_tokens
        self.losses: list[dict[str, float]] = []
        self.started = time.perf_counter()
        self.first_step = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.started, self.first_step = time.perf_counter(), state.global_step

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if not logs or "loss" not in logs:
            return
        step = state.global_step
        tokens = sum(self.step_tokens[self.first_step : step])
        entry = {"step": step, "loss": round(float(logs["loss"]), 6)}
        for key in ("learning_rate", "grad_norm"):
            if key in logs:
                entry[key] = float(logs[key])
        self.losses.append(entry)
        self.bar.update(
            self.task,
            completed=step,
            rate=f"loss {entry['loss']:.4f}, {per_second(tokens, time.perf_counter() - self.started, 'tok')}",
        )


def step_tokens(rows: list[Example], batch_size: int) -> list[int]:
    """Tokens of each optimizer step: [steps]."""
    return [sum(len(r.input_ids) for r in rows[i : i + batch_size]) for i in range(0, len(rows), batch_size)]


def run_trainer(
    model: Any,
    rows: list[Example],
    tokenizer: Any,
    work: Path,
    settings: Any,
    *,
    micro: int,
    accumulation: int,
    steps: int,
    resume: Path | None,
) -> list[dict[str, float]]:
    """Train `model` in place for `steps` optimizer steps; returns the logged losses (one per step)."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    args = TrainingArguments(
        output_dir=str(work),
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=accumulation,
        max_steps=steps,
        learning_rate=settings.lr,
        weight_decay=0.0,  # AI2's; also what keeps gradient-masked rows unchanged (freeze.py)
        warmup_steps=settings.warmup,  # a float < 1: a share of the steps (transformers 5)
        lr_scheduler_type="linear",
        max_grad_norm=1.0,
        bf16=settings.dtype == "bfloat16",
        logging_steps=1,
        save_strategy="steps",
        save_steps=settings.checkpoint_every,
        save_total_limit=2,
        seed=settings.seed,
        data_seed=settings.seed,
        report_to=[],
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,
        use_cpu=str(settings.device).startswith("cpu"),
        ddp_backend="gloo" if str(settings.device).startswith("cpu") and world()[1] > 1 else None,
    )
    with events.progress() as bar:
        task = bar.add_task("finetune", total=steps)
        progress = _Progress(bar, task, step_tokens(rows, settings.batch_size))
        trainer = _InOrder(
            model=model,
            args=args,
            train_dataset=_Rows(rows),
            data_collator=lambda batch: collate(batch, pad),
            callbacks=[progress],
        )
        trainer.remove_callback(PrinterCallback)  # it prints every log dict to stdout; progress goes through events
        earlier = _earlier_losses(resume)  # read now: checkpoint rotation may delete `resume` during the run
        trainer.train(resume_from_checkpoint=str(resume) if resume is not None else None)
    return earlier + progress.losses


def _earlier_losses(resume: Path | None) -> list[dict[str, float]]:
    """A resumed run's losses before `resume`, from the checkpoint's trainer state."""
    if resume is None:
        return []
    import json

    state = json.loads((resume / "trainer_state.json").read_text())
    return [
        {
            "step": e["step"],
            "loss": round(float(e["loss"]), 6),
            **{k: float(e[k]) for k in ("learning_rate", "grad_norm") if k in e},
        }
        for e in state.get("log_history", [])
        if "loss" in e
    ]
