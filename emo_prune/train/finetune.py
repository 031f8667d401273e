"""`finetune`: train a build (or any supported model) on calibration sources, write it back as a build.

Why transformers' `Trainer` and not a loop of our own: it brings what a fine-tuning run needs and what
AI2's own recipe uses (allenai/EMO src/hf_training/finetune.py): accelerate underneath, so the same call
runs in one process or under `torchrun` / `accelerate launch` with DDP (2 CPU processes are tested); gradient
accumulation; the linear warmup / decay schedule; gradient clipping; bf16 autocast; and checkpoints holding
the optimizer, scheduler and RNG states, so a killed run resumes where it stopped. peft brings `--lora`.
FSDP is accelerate's to set up and has never been run here: accelerate offers it on accelerators only (its
state.py sets FSDP for MULTI_GPU-like types, never MULTI_CPU), and no GPU was lent.

Defaults are AI2's (scripts/selective_hf/launch_selective_hf.sh): 1 epoch, 32 sequences per optimizer
step, lr 5e-5, warmup 10% of the steps, weight decay 0, gradient clipping at 1.0, the load-balancing aux
loss on at 0.01, loss only on the answers of context -> answer data (`data.py`), AI2's freeze modes
(`freeze.py`).

Order of work: refuse what can be refused before any compute (output exists, settings, plan, data), load
the model, freeze, train with checkpoints in a work folder beside the output
(`.<OUT>.finetune-checkpoints`, reused by a rerun with the same settings and data, deleted after
success), then write the output atomically (`AtomicFolder`): `save_pretrained` in the source's dtype,
the source's tokenizer and side files, and the source build's manifest (plan, per-layer counts, source
identity) with a `finetune` record (settings, data digest, losses) added. The config is the source's,
so a build keeps its per-layer expert counts; a LoRA adapter is merged into the weights first.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from emo_prune import events
from emo_prune.common.constants import (
    FINETUNE_AUX_COEF,
    FINETUNE_BATCH,
    FINETUNE_LR,
    FINETUNE_WARMUP,
    TRAIN_MODES,
)
from emo_prune.errors import OutputError, TrainingError
from emo_prune.version import __version__

FINETUNE_FILE = "finetune.json"  # the training record of a model that has no build manifest
WORK_SUFFIX = ".finetune-checkpoints"
RUN_FILE = "run.json"  # in the work folder: what the checkpoints were made with
MICRO_TOKENS = 16_384  # tokens per forward (micro-batch x seq_len) at most; gradient accumulation makes up the rest


@dataclass(frozen=True)
class FinetuneSettings:
    epochs: int = 1
    max_tokens: int | None = None  # a token budget instead of whole epochs
    lr: float = FINETUNE_LR
    batch_size: int = FINETUNE_BATCH  # sequences per optimizer step, all processes together
    micro_batch: int | None = None  # sequences per forward and process (None: from MICRO_TOKENS)
    seq_len: int | None = None  # None: the model's, at most 2048
    warmup: float = FINETUNE_WARMUP
    seed: int = 0
    train: str = "all"
    experts_of: str | None = None  # a plan file: train only its experts (inside the full model)
    router: bool = False  # with experts_of / expert modes: also the trained experts' router rows
    lora: int | None = None  # LoRA rank (peft), merged into the weights on save
    dtype: str = "float32"  # training dtype: float32, or bfloat16 (autocast on a float32 copy)
    device: str = "cpu"
    aux_loss: float = FINETUNE_AUX_COEF
    checkpoint_every: int = 100  # optimizer steps between resumable checkpoints
    max_shard_size: str = "5GB"

    def check(self) -> None:
        if self.train not in TRAIN_MODES:
            raise TrainingError(f"--train {self.train!r} is not one of {', '.join(TRAIN_MODES)}")
        for name in ("epochs", "batch_size", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise TrainingError(f"--{name.replace('_', '-')} must be at least 1 (got {getattr(self, name)})")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise TrainingError(f"--max-tokens must be at least 1 (got {self.max_tokens})")
        if not self.lr > 0 or not 0 <= self.warmup < 1:
            raise TrainingError(f"--lr must be > 0 and --warmup in [0, 1) (got {self.lr}, {self.warmup})")
        if self.lora is not None and self.lora < 1:
            raise TrainingError(f"--lora RANK must be at least 1 (got {self.lora})")
        if self.lora is not None and (self.experts_of is not None or self.train == "experts"):
            raise TrainingError(
                "--lora adapts whole tensors, but this --train mode trains only some rows of the stacked expert "
                "tensors (routed, not shared; or a plan's experts); use --train experts+shared, or drop --lora"
            )
        if self.dtype not in ("float32", "bfloat16"):
            raise TrainingError(f"--dtype {self.dtype!r}: fine-tuning runs in float32 or bfloat16")


@dataclass
class FinetuneResult:
    out_dir: Path
    steps: int
    rows: int
    tokens: int
    trainable: dict[str, int]
    losses: list[dict[str, float]]
    data_digest: str
    seconds: float
    resumed_from: int | None = None  # the optimizer step a rerun continued from
    kept_counts: list[int | None] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["out_dir"] = str(self.out_dir)
        return data


def world() -> tuple[int, int]:
    """(rank, processes) of a `torchrun` / `accelerate launch` run; (0, 1) otherwise."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def micro_batches(settings: FinetuneSettings, seq_len: int, processes: int) -> tuple[int, int]:
    """(sequences per forward and process, accumulation steps) making `batch_size` sequences per optimizer step.

    The micro-batch does not depend on the number of processes (MICRO_TOKENS / seq_len, or --micro-batch),
    so one process and N processes run the same forwards (the aux loss is a per-forward statistic)."""
    if settings.batch_size % processes:
        raise TrainingError(f"--batch-size {settings.batch_size} does not split over {processes} processes; use a multiple")
    per_process = settings.batch_size // processes
    cap = settings.micro_batch or max(1, MICRO_TOKENS // seq_len)
    micro = max(d for d in range(1, per_process + 1) if per_process % d == 0 and d <= cap)
    return micro, per_process // micro


def work_folder(out_dir: Path) -> Path:
    return out_dir.absolute().parent / f".{out_dir.name}{WORK_SUFFIX}"


def _run_record(model_dir: Path, settings: FinetuneSettings, digest: str, sources: list[str]) -> dict[str, Any]:
    return {"model": str(model_dir.resolve()), "settings": asdict(settings), "data_digest": digest, "sources": sources}


def _prepare_work(work: Path, record: dict[str, Any], rank: int) -> Path | None:
    """The work folder for this run, and its last complete checkpoint when a rerun can continue from it."""
    from transformers.trainer_utils import get_last_checkpoint

    run_file = work / RUN_FILE
    if rank != 0:  # rank 0 checks and creates the folder; the others only read what a previous run left
        last = get_last_checkpoint(str(work)) if run_file.is_file() else None
        return Path(last) if last else None
    if work.is_symlink() or (work.exists() and not run_file.is_file()):
        raise OutputError(f"{work} exists and is not an emo-prune fine-tuning work folder; move it away")
    if run_file.is_file():
        if json.loads(run_file.read_text()) != record:
            raise TrainingError(
                f"{work} holds checkpoints of a run with other settings or data; delete it to start over, or rerun "
                f"with the settings it records in {run_file}"
            )
        last = get_last_checkpoint(str(work))
        return Path(last) if last else None
    work.mkdir(parents=True, exist_ok=True)
    (work / RUN_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return None


def finetune(
    model_dir: str | Path, sources: list[str], out_dir: str | Path, settings: FinetuneSettings, *, overwrite: bool = False
) -> FinetuneResult:
    """Fine-tune `model_dir` on `sources` (calibration specs, as `profile --calib`) into `out_dir`."""
    from emo_prune.io import Checkpoint
    from emo_prune.io.atomic import AtomicFolder
    from emo_prune.models.loading import load_tokenizer, resolve_seq_len
    from emo_prune.train.data import training_rows

    started = time.perf_counter()
    settings.check()
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    checkpoint = Checkpoint.open(model_dir)
    folder = AtomicFolder(out_dir, overwrite=overwrite, protect=[model_dir])  # refuses an existing output now
    kept = _experts_of(settings, checkpoint)
    seq_len = resolve_seq_len(settings.seq_len, checkpoint.config)
    rank, processes = world()
    micro, accumulation = micro_batches(settings, seq_len, processes)
    tokenizer = load_tokenizer(checkpoint.path)
    rows = training_rows(sources, tokenizer, seq_len, epochs=settings.epochs, max_tokens=settings.max_tokens, seed=settings.seed)
    rows = _whole_batches(rows, settings.batch_size)
    model, trainable = _load_for_training(checkpoint, settings, kept)  # refuses a mode with nothing to train
    with folder.lock if rank == 0 else contextlib.nullcontext():  # one run per output (and work folder) at a time
        result = _train_and_save(model, trainable, rows, tokenizer, checkpoint, folder, sources, settings, micro, accumulation)
    _barrier()
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def _train_and_save(
    model: Any,
    trainable: Any,
    rows: list[Any],
    tokenizer: Any,
    checkpoint: Any,
    folder: Any,
    sources: list[str],
    settings: FinetuneSettings,
    micro: int,
    accumulation: int,
) -> FinetuneResult:
    from emo_prune.train.data import data_digest

    rank, processes = world()
    out_dir, digest = Path(folder.target), data_digest(rows)
    work = work_folder(out_dir)
    resume = _prepare_work(work, _run_record(checkpoint.path, settings, digest, sources), rank)
    if resume is not None:
        events.note(f"continuing from {resume} (a previous run with the same settings and data stopped there)")
    steps = len(rows) // settings.batch_size
    tokens = sum(len(r.input_ids) for r in rows)
    from emo_prune.train.hf_trainer import run_trainer

    losses = run_trainer(
        model, rows, tokenizer, work, settings, micro=micro, accumulation=accumulation, steps=steps, resume=resume
    )
    result = FinetuneResult(
        out_dir=out_dir,
        steps=steps,
        rows=len(rows),
        tokens=tokens,
        trainable=trainable.summary(),
        losses=losses,
        data_digest=digest,
        seconds=0.0,
        resumed_from=None if resume is None else int(resume.name.rsplit("-", 1)[-1]),
        kept_counts=[lay.num_experts or None for lay in checkpoint.architecture.layouts],
    )
    if rank == 0:
        record = {
            "tool_version": __version__,
            "sources": sources,
            "data_digest": digest,
            "settings": asdict(settings),
            "micro_batch": micro,
            "gradient_accumulation": accumulation,
            "processes": processes,
            "steps": steps,
            "rows": len(rows),
            "tokens": tokens,
            "trainable": trainable.summary(),
            "losses": losses,
        }
        from emo_prune.train.save import save_finetuned

        save_finetuned(model, checkpoint, folder, record, max_shard_size=settings.max_shard_size)
        shutil.rmtree(work, ignore_errors=True)
    return result


def _whole_batches(rows: list[Any], batch_size: int) -> list[Any]:
    """The rows of whole optimizer steps: a last, partial step would be padded differently by each number of
    processes (accelerate repeats rows to fill every process), so it is dropped, with a note."""
    if len(rows) < batch_size:
        raise TrainingError(
            f"the training data makes {len(rows)} sequences, fewer than one optimizer step (--batch-size {batch_size}); "
            "give more data or a smaller --batch-size"
        )
    whole = len(rows) // batch_size * batch_size
    if whole < len(rows):
        events.note(f"the last {len(rows) - whole} sequences do not fill an optimizer step of {batch_size}; they are left out")
    return rows[:whole]


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _experts_of(settings: FinetuneSettings, checkpoint: Any) -> Any:
    """The plan's kept ids per layer (validated against this model), or None."""
    if settings.experts_of is None:
        return None
    from emo_prune.select.plan import Plan, validate_plan

    if settings.train == "all":
        raise TrainingError("--experts-of limits expert training; use it with --train experts (or experts+shared...), not all")
    plan = Plan.load(settings.experts_of)
    return validate_plan(plan, checkpoint.architecture, where=f"--experts-of {settings.experts_of}")


def _load_for_training(checkpoint: Any, settings: FinetuneSettings, kept: Any) -> tuple[Any, Any]:
    """The model in float32 (master weights; bf16 runs autocast), aux loss on, parameters frozen by the mode,
    wrapped in a LoRA adapter with --lora."""
    import torch

    from emo_prune.models.loading import load_whole, resolve_device
    from emo_prune.train.freeze import apply_freeze, trainable_set

    device = resolve_device(settings.device, int(os.environ.get("LOCAL_RANK", "0")))
    model = load_whole(checkpoint.path, torch.float32, device, "grouped_mm")
    model.config.output_router_logits = settings.aux_loss > 0
    model.config.router_aux_loss_coef = settings.aux_loss
    if hasattr(model, "router_aux_loss_coef"):
        model.router_aux_loss_coef = settings.aux_loss  # read once at init by the *ForCausalLM classes
    trainable = trainable_set(model, checkpoint.architecture, settings.train, kept, settings.router)
    apply_freeze(model, trainable)
    if settings.lora is not None:
        from emo_prune.train.lora import wrap_lora

        torch.manual_seed(settings.seed)  # the adapter's random init: the same run, the same adapter
        model = wrap_lora(model, trainable, settings.lora)
    return model, trainable
