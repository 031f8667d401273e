"""Write a fine-tuned model as a normal build, atomically.

What the output holds (all inside one `AtomicFolder`):
  weights              `save_pretrained` (safetensors, sharded at `max_shard_size`) in the SOURCE's dtype; a
                       LoRA adapter merged first, so the folder is a plain model for stock transformers
  config.json          the source's own bytes: the per-layer expert counts, the plan's top-k and every key
                       the source had survive unchanged (the LoRA recovery that came back with the full
                       expert count was a rewritten config)
  side files           tokenizer, generation config, the build's dropped-router side file (`extract.run.side_files`)
  emo_prune.json       a build's manifest (plan, kept ids, source identity: `verify`, `merge-back` and
                       `export` read it) with a `finetune` record added; a model without a manifest gets
                       `finetune.json` with the record alone
  pruning_metadata.json copied when the source has one (AI2's scripts read it)
"""

from __future__ import annotations

import json
import shutil
from typing import Any

import torch

from emo_prune.extract.card import AI2_METADATA_FILE, CARD_FILE, MANIFEST_FILE, front_matter, loading_lines
from emo_prune.extract.coverage import SIDE_FILE
from emo_prune.extract.run import copied_files
from emo_prune.io import CONFIG_FILE, Checkpoint
from emo_prune.io.atomic import AtomicFolder, write_text
from emo_prune.models.loading import resolve_dtype
from emo_prune.select.plan import dumps
from emo_prune.train.finetune import FINETUNE_FILE


def plain_model(model: Any) -> Any:
    """The trained transformers model: a peft wrapper merged into its base weights and removed."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    return model


def save_finetuned(model: Any, source: Checkpoint, folder: AtomicFolder, record: dict[str, Any], *, max_shard_size: str) -> None:
    """Write `model` into `folder` (made, and possibly locked, by the caller before training)."""
    model = plain_model(model)
    model.to(resolve_dtype("auto", source.config))  # float32 master weights -> the source's dtype (exact for bf16)
    with folder as tmp:
        with torch.no_grad():
            model.save_pretrained(str(tmp), max_shard_size=max_shard_size)
        (tmp / CONFIG_FILE).unlink()
        shutil.copyfile(source.path / CONFIG_FILE, tmp / CONFIG_FILE)
        for path in copied_files(source.path):  # the source's generation config wins over save_pretrained's
            (tmp / path.name).unlink(missing_ok=True)
            shutil.copyfile(path, tmp / path.name)
        for name in (SIDE_FILE, AI2_METADATA_FILE):
            if (source.path / name).is_file():
                shutil.copyfile(source.path / name, tmp / name)
        manifest = source.path / MANIFEST_FILE
        if manifest.is_file():
            data = json.loads(manifest.read_text())
            data["finetune"] = record
            write_text(tmp / MANIFEST_FILE, dumps(data))
        else:
            write_text(tmp / FINETUNE_FILE, dumps({"finetune": record}))
        write_text(tmp / CARD_FILE, card(source, record))


def card(source: Checkpoint, record: dict[str, Any]) -> str:
    """A short model card: what was fine-tuned on what, and how it loads."""
    losses = record["losses"]
    settings = record["settings"]
    lora = "" if settings["lora"] is None else f", LoRA rank {settings['lora']} merged"
    lines = [
        *front_matter("fine-tuned"),
        f"# {source.path.name}, fine-tuned",
        "",
        f"`{source.path.name}` fine-tuned by emo-prune {record['tool_version']} on {', '.join(record['sources'])} "
        f"({record['tokens']} tokens, {record['steps']} optimizer steps of {settings['batch_size']} sequences, "
        f"--train {settings['train']}{lora}).",
        f"Loss {losses[0]['loss']:.4f} -> {losses[-1]['loss']:.4f}; data sha256 {record['data_digest']}.",
        "Its weights differ from the build it was trained from: `emo-prune eval` scores it; `verify` against the",
        f"original model no longer holds (the plan and source in `{MANIFEST_FILE}` are kept, with a `finetune` record).",
        "",
        *loading_lines(source.architecture),
    ]
    return "\n".join(lines)
