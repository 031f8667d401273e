"""`extract`: write the smaller checkpoint a plan describes, streamed, atomically, byte-for-byte repeatable.

Order of work: open the source (headers only), validate the plan against its config AND its tensors
(`emo_prune.io.inventory`), check its identity, the output path and the free disk space, rewrite the
config, lay out every output shard, look for NaN / Inf in what is kept (`finite`); only then create
the temporary folder (`emo_prune.io.atomic`) and stream the bytes (see `jobs`, `source`,
`emo_prune.io.shards`). The output's lock is taken once the cheap checks pass, before the hashing and
the NaN scan. Peak memory does not grow with the model: weights move file to file through the kernel.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from emo_prune import events
from emo_prune.common.text import plural
from emo_prune.common.units import human_bytes
from emo_prune.errors import CheckpointError, OutputError, PlanError
from emo_prune.extract.card import AI2_METADATA_FILE, CARD_FILE, MANIFEST_FILE, ai2_metadata, manifest, model_card
from emo_prune.extract.config import remap_config
from emo_prune.extract.coverage import write_dropped_router
from emo_prune.extract.finite import nonfinite_tensors
from emo_prune.extract.jobs import Job, build_jobs
from emo_prune.extract.source import copy_into
from emo_prune.io import CONFIG_FILE, INDEX_FILE, Checkpoint, build_inventory, model_identity
from emo_prune.io.atomic import AtomicFolder, write_text
from emo_prune.io.dtypes import NAME_TAGS, tag_for_name
from emo_prune.io.model_files import read_model_bytes, side_files
from emo_prune.io.shards import ShardedWriter
from emo_prune.io.sizes import parse_size
from emo_prune.select.plan import Plan, dumps, validate_plan

NOT_COPIED = {CONFIG_FILE, INDEX_FILE, CARD_FILE, MANIFEST_FILE, AI2_METADATA_FILE, "pytorch_model.bin.index.json"}
SMALL_FILES = 1024 * 1024  # headers, config, manifest, card: what a build writes beyond shards and side files


@dataclass
class ExtractResult:
    out_dir: Path
    files: list[str]
    total_bytes: int
    kept_counts: list[int | None]
    num_experts_per_tok: dict[str, int]
    config_changes: dict[str, dict[str, Any]]
    seconds: float = 0.0
    copied_files: list[str] = field(default_factory=list)
    nonfinite: list[str] = field(default_factory=list)  # kept router / expert tensors holding NaN or Inf

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "files": self.files,
            "total_bytes": self.total_bytes,
            "kept_counts": self.kept_counts,
            "num_experts_per_tok": self.num_experts_per_tok,
            "config_changes": self.config_changes,
            "copied_files": self.copied_files,
            "nonfinite": self.nonfinite,
            "seconds": round(self.seconds, 3),
        }


def resolve_dtype(dtype: str | None) -> str | None:
    if dtype is None or dtype in ("same", "auto"):
        return None
    tag = tag_for_name(dtype)
    if tag is None:
        raise OutputError(f"--dtype {dtype!r} is not one of same, {', '.join(sorted(NAME_TAGS))}")
    return tag


def copied_files(model_dir: Path) -> list[Path]:
    """Tokenizer, generation config, remote-code .py files...: every side file (`io.model_files.side_files`:
    regular files inside the model folder, a symlink only into it or the HF cache's blob store) that the
    build does not write itself."""
    return [p for p in side_files(model_dir) if p.name not in NOT_COPIED]


def _check_identity(plan: Plan, identity: dict[str, Any], model_dir: Path) -> None:
    planned = (plan.source_model or {}).get("digest")
    if planned and planned != identity["digest"]:
        raise PlanError(
            f"the plan was made for {plan.source_model.get('path')} (digest {planned[:12]}), "  # type: ignore[union-attr]
            f"not {model_dir} (digest {identity['digest'][:12]}); select again for this model"
        )


def _check_space(out_dir: Path, needed: int) -> None:
    """`needed`: every byte the build will hold; the margin scales with it (no fixed floor refuses a small build)."""
    probe = out_dir.absolute().parent
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed:
        raise OutputError(f"{probe} has {free:,} bytes free, the output needs {needed:,} bytes; free some space")


def _report_nonfinite(names: list[str], model_dir: Path, strict: bool) -> None:
    if not names:
        return
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    message = f"{model_dir} holds NaN/Inf in {plural(len(names), 'kept router/expert tensor')}: {shown}"
    if strict:
        raise CheckpointError(f"{message}; refusing with --strict (nothing was written)")
    events.warn(f"{message}; the build copies them as they are (--strict refuses)")


def extract(
    model_dir: str | Path,
    plan: Plan,
    out_dir: str | Path,
    *,
    max_shard_size: str | int = "5GB",
    dtype: str | None = None,
    overwrite: bool = False,
    strict: bool = False,
) -> ExtractResult:
    """Write `plan`'s subset of `model_dir` to `out_dir`; progress: one "extracting" task over the bytes written.

    NaN / Inf in a kept router row or expert is a warning, or with `strict` a CheckpointError.
    """
    started = time.perf_counter()
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    out_dtype = resolve_dtype(dtype)
    shard_cap = parse_size(max_shard_size, "--max-shard-size")
    checkpoint = Checkpoint.open(model_dir)
    arch = checkpoint.architecture
    # which tensor is which, per layer; refuses a config that disagrees with its tensors before the plan is
    # checked against that config (a lying expert count is the config's fault, not the plan's)
    inventory = build_inventory(checkpoint)
    kept = validate_plan(plan, arch)
    folder = AtomicFolder(out_dir, overwrite=overwrite, protect=[model_dir])
    # the lock: a second writer into out_dir fails now, not after the hashing and the NaN scan (the task's
    # spinner meanwhile; its total, the bytes to write, is set once the first tensor is written)
    with folder.lock, events.progress() as progress:
        task = progress.add_task("extracting", total=None)
        identity = model_identity(checkpoint)
        _check_identity(plan, identity, model_dir)
        plan = replace(plan, source_model=identity)

        config, changes = remap_config(checkpoint.config, arch, kept, out_dtype)
        top_k_key = arch.family.config_keys["top_k"]
        jobs = build_jobs(checkpoint, inventory, kept, out_dtype)
        sides = copied_files(model_dir)
        needed = sum(job.spec.nbytes for job in jobs) + sum(p.stat().st_size for p in sides) + SMALL_FILES
        _check_space(out_dir, needed)
        nonfinite = nonfinite_tensors(jobs)
        _report_nonfinite(nonfinite, model_dir, strict)
        extraction: dict[str, Any] = {
            "num_experts_per_tok": {"original": checkpoint.config[top_k_key], "new": config[top_k_key]},
            "config_changes": changes,
            "dtype": out_dtype or "same",
            "max_shard_size": shard_cap,
        }
        if nonfinite:
            extraction["nonfinite"] = nonfinite
        try:
            with folder as tmp:
                files, total = _write_shards(tmp, jobs, shard_cap, progress, task)
                extraction.update(files=files, total_bytes=total)
                copied = []
                for path in sides:  # read through the same check as every loader (no FIFO, nothing outside)
                    (tmp / path.name).write_bytes(read_model_bytes(model_dir, path.name, "side file"))
                    copied.append(path.name)
                write_dropped_router(tmp, checkpoint, inventory, kept)  # the coverage guard's side file
                write_text(tmp / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
                write_text(tmp / MANIFEST_FILE, dumps(manifest(plan, kept, extraction)))
                write_text(tmp / AI2_METADATA_FILE, dumps(ai2_metadata(plan, kept, arch)))
                write_text(tmp / CARD_FILE, model_card(plan, kept, arch, out_dir.name, extraction))
        except OSError as exc:
            raise OutputError(f"writing {out_dir} failed: {exc.strerror or exc}; nothing was left behind") from exc
    return ExtractResult(
        out_dir=out_dir,
        files=files,
        total_bytes=total,
        kept_counts=[None if ids is None else len(ids) for ids in kept],
        num_experts_per_tok=extraction["num_experts_per_tok"],
        config_changes=changes,
        seconds=time.perf_counter() - started,
        copied_files=copied,
        nonfinite=nonfinite,
    )


def _write_shards(folder: Path, jobs: list[Job], shard_cap: int, progress: Any, task: int) -> tuple[list[str], int]:
    """Every job's tensor into size-capped shards of `folder`; `task` of `progress` counts the bytes written."""
    writer = ShardedWriter(folder, [job.spec for job in jobs], shard_cap)
    done = 0
    try:
        for job in jobs:
            fill = lambda fd, offset, _nbytes, job=job: copy_into(job.source, fd, offset, job.spec.dtype)  # noqa: E731
            writer.write_from(job.spec.name, fill)
            done += job.spec.nbytes
            progress.update(task, completed=done, total=writer.total_bytes, rate=human_bytes(done))
        index = writer.finish()
    finally:
        writer.abort()
    return sorted(set(index["weight_map"].values())), index["metadata"]["total_size"]
