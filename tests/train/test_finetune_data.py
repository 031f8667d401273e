"""Answer-only loss: context -> answer rows carry labels -100 on every context token, and the model's loss
over such a batch is the cross-entropy of the answer tokens alone."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoTokenizer

from emo_prune.calib.pairs import tokenize_pair
from emo_prune.errors import CalibrationError
from emo_prune.models.loading import load_whole
from emo_prune.train.data import (
    IGNORE,
    collate,
    data_digest,
    pair_example,
    training_rows,
)


def test_pairs_train_on_the_answer_only(full, data):
    tokenizer = AutoTokenizer.from_pretrained(full)
    rows = training_rows([str(data["pairs"])], tokenizer, seq_len=64)
    assert len(rows) == 16
    first = json.loads(data["pairs"].read_text().splitlines()[0])
    for row in rows:
        assert len(row.input_ids) == len(row.labels)
        masked = [i for i, t in enumerate(row.labels) if t == IGNORE]
        assert masked == list(range(len(masked))) and 0 < len(masked) < len(row.labels)  # a context prefix, then the answer
        assert row.labels[len(masked) :] == row.input_ids[len(masked) :]
    context, answer = tokenize_pair(tokenizer, first["context"], first["answer"])
    assert any(r.input_ids == context + answer and r.labels == [IGNORE] * len(context) + answer for r in rows)


def test_plain_text_trains_on_every_token(full, data):
    tokenizer = AutoTokenizer.from_pretrained(full)
    rows = training_rows([str(data["text"])], tokenizer, seq_len=8)
    assert rows and all(r.labels == r.input_ids and len(r.input_ids) <= 8 for r in rows)


def test_a_long_pair_loses_context_not_answer():
    row = pair_example(list(range(10)), [50, 51, 52], seq_len=5, source="x")
    assert row.input_ids == [8, 9, 50, 51, 52] and row.labels == [IGNORE, IGNORE, 50, 51, 52]


def test_model_loss_is_the_answers_cross_entropy(full, data):
    tokenizer = AutoTokenizer.from_pretrained(full)
    rows = training_rows([str(data["pairs"])], tokenizer, seq_len=64)[:3]
    batch = collate([{"input_ids": r.input_ids, "labels": r.labels} for r in rows], pad_id=0)
    model = load_whole(full, torch.float32)
    with torch.no_grad():
        out = model(**batch)
    logits, labels = out.logits[:, :-1], batch["labels"][:, 1:]  # position t predicts token t + 1
    keep = labels != IGNORE
    manual = torch.nn.functional.cross_entropy(logits[keep], labels[keep])
    assert torch.allclose(out.loss, manual, atol=1e-5)
    padded = batch["attention_mask"] == 0
    assert (batch["labels"][padded] == IGNORE).all()


def test_order_and_budget_are_seeded(full, data):
    tokenizer = AutoTokenizer.from_pretrained(full)
    sources = [str(data["pairs"]), str(data["text"])]
    a = training_rows(sources, tokenizer, 32, epochs=2, seed=1)
    b = training_rows(sources, tokenizer, 32, epochs=2, seed=1)
    c = training_rows(sources, tokenizer, 32, epochs=2, seed=2)
    assert data_digest(a) == data_digest(b) != data_digest(c) and len(a) == 2 * len(training_rows(sources, tokenizer, 32))
    budget = training_rows(sources, tokenizer, 32, max_tokens=50)
    assert sum(len(r.input_ids) for r in budget[:-1]) < 50 <= sum(len(r.input_ids) for r in budget)


def test_records_without_answers_are_refused(full, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(full)
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"context": "Question: 1 + 1?"}) + "\n")
    with pytest.raises(CalibrationError, match="answer"):
        training_rows([str(path)], tokenizer, 32)
    path.write_text(json.dumps({"context": "Question: 1 + 1?", "answer": ""}) + "\n")
    with pytest.raises(CalibrationError, match="answer"):
        training_rows([str(path)], tokenizer, 32)
