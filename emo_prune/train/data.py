"""Fine-tuning examples from calibration sources (the syntax and loaders of `profile --calib`).

An example is one row: `input_ids` [S] and `labels` [S] (S <= seq_len), -100 where no loss is taken.
  context -> answer sources   JSONL files of {"context", "answer"} records (read as the pool index reads
                              them) and `task:` (lm-eval's few-shot prompt -> target): the loss is on the
                              answer tokens only, as AI2's MaskedLossDataCollator does; the context is
                              cut on the left when the pair is longer than seq_len, the answer never is
                              unless it alone is longer.
  every other source          plain text (built-in corpora, files, hf:): each document tokenized by the one
                              rule of profile and verify (`tokenize_documents`), cut into windows of
                              seq_len tokens, loss on every token.
The run's order is fixed here, not by the trainer: each epoch is a seeded shuffle of the examples and the
epochs are concatenated (then cut to `max_tokens`), so a resumed or multi-process run sees the same rows
in the same optimizer steps.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emo_prune.errors import CalibrationError

IGNORE = -100  # labels value the loss skips (torch cross_entropy's ignore_index, transformers' convention)


@dataclass(frozen=True)
class Example:
    input_ids: list[int]  # [S]
    labels: list[int]  # [S], IGNORE on context tokens
    source: str

    @property
    def loss_tokens(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE)


def pair_example(context: list[int], answer: list[int], seq_len: int, source: str) -> Example:
    """One context -> answer row of at most seq_len tokens, loss on the answer only."""
    answer = answer[:seq_len]
    context = context[len(context) - (seq_len - len(answer)) :] if len(context) + len(answer) > seq_len else context
    return Example(context + answer, [IGNORE] * len(context) + answer, source)


def _pair_texts(spec: str) -> list[tuple[str, str]] | None:
    """(context, answer) texts of a context -> answer source, None for a plain-text source."""
    from emo_prune.calib.pairs import holds_pairs, read_pair_records
    from emo_prune.calib.remote import task_pairs
    from emo_prune.calib.sources import parse_source

    source = parse_source(spec)
    path = Path(source.target)
    if source.kind == "task":
        return task_pairs(source.target, source.split or "validation")
    if source.kind == "path" and path.suffix.lower() == ".jsonl" and holds_pairs(path):
        return [(pair["context"], pair["answer"]) for _, pair in read_pair_records(path, source.domain)]
    return None


def source_examples(spec: str, tokenizer: Any, seq_len: int, seed: int) -> list[Example]:
    """The rows of one source, in source order."""
    from emo_prune.calib import load_documents
    from emo_prune.calib.pairs import tokenize_pair
    from emo_prune.profile.batches import tokenize_documents

    pairs = _pair_texts(spec)
    if pairs is not None:
        rows = []
        for context, answer in pairs:
            ctx, ans = tokenize_pair(tokenizer, context, answer)
            if ans:
                rows.append(pair_example(ctx, ans, seq_len, spec))
        if not rows:
            raise CalibrationError(
                f"{spec}: no record has answer tokens; context -> answer data trains on the answers, give each record "
                'a non-empty "answer"'
            )
        return rows
    documents = load_documents([spec], seed=seed, split=None)
    rows = []
    for doc in tokenize_documents(documents, tokenizer):
        for start in range(0, len(doc.ids), seq_len):
            window = doc.ids[start : start + seq_len]
            if len(window) > 1:  # a lone token predicts nothing
                rows.append(Example(window, list(window), spec))
    return rows


def training_rows(
    sources: list[str], tokenizer: Any, seq_len: int, *, epochs: int = 1, max_tokens: int | None = None, seed: int = 0
) -> list[Example]:
    """Every source's rows, one seeded shuffle per epoch, epochs concatenated, cut after `max_tokens` tokens."""
    if not sources:
        raise CalibrationError("no training data given; pass --calib FILE|DIR|builtin:code:train|task:NAME")
    examples = [row for spec in sources for row in source_examples(spec, tokenizer, seq_len, seed)]
    if not examples or not any(e.loss_tokens for e in examples):
        raise CalibrationError(f"the training data of {', '.join(sources)} holds no token to train on")
    stream: list[Example] = []
    used = 0
    for epoch in range(epochs):
        order = list(examples)
        random.Random(f"emo-prune finetune {seed} {epoch}").shuffle(order)
        for row in order:
            if max_tokens is not None and used >= max_tokens:
                return stream
            stream.append(row)
            used += len(row.input_ids)
    return stream


def data_digest(rows: list[Example]) -> str:
    """sha256 over the rows the model trains on, in order (token ids and loss mask): what the manifest records."""
    h = hashlib.sha256()
    for row in rows:
        for part in (row.input_ids, row.labels):
            h.update(len(part).to_bytes(8, "little"))
            h.update(b"".join(int(t).to_bytes(8, "little", signed=True) for t in part))
    return h.hexdigest()


def collate(rows: list[dict[str, list[int]]], pad_id: int) -> dict[str, Any]:
    """Right-pad a micro-batch: input_ids / labels / attention_mask [B, S_max]; padding has label IGNORE."""
    import torch

    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r["input_ids"])
        ids[i, :n] = torch.tensor(r["input_ids"])
        labels[i, :n] = torch.tensor(r["labels"])
        mask[i, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}
