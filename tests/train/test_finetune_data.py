"""Answer-only loss: context -> answer rows carry labels -100 on every context token, and the model's loss
over such a batch is the cross-entropy of the answer tokens alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

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

REPO = Path(__file__).resolve().parents[2]


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


@pytest.fixture(scope="module")
def task_file(tmp_path_factory) -> Path:
    """A user's own lm-eval task, read offline: 12 validation docs (what `task:` trains on), 6 few-shot docs."""
    root = tmp_path_factory.mktemp("task")
    shutil.copy(REPO / "recipes" / "tasks" / "utils.py", root / "utils.py")  # loads data/ beside it, by "split"
    (root / "data").mkdir()
    docs = [{"question": f"{a} plus {b}", "answer": str(a + b), "split": "validation"} for a in range(3) for b in range(4)]
    docs += [{"question": f"{a} plus 9", "answer": str(a + 9), "split": "fewshot"} for a in range(6)]
    (root / "data" / "sums.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (root / "sums.yaml").write_text(
        "task: t_sums\ncustom_dataset: !function utils.load_jsonl\ndataset_kwargs:\n  data_file: data/sums.jsonl\n"
        "validation_split: validation\nfewshot_split: fewshot\noutput_type: generate_until\n"
        "doc_to_text: 'Q: {{question}}\\nA:'\ndoc_to_target: answer\ntarget_delimiter: ' '\n"
        "metric_list:\n  - metric: exact_match\n    aggregation: mean\n    higher_is_better: true\n"
    )
    return root / "sums.yaml"


def test_a_task_file_trains_on_its_validation_answers_only(full, task_file, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    tokenizer = AutoTokenizer.from_pretrained(full)
    rows = training_rows([f"task:{task_file}"], tokenizer, seq_len=256)
    assert len(rows) == 12  # one row per validation doc; few-shot docs only in the prompts
    answers = sorted(tokenizer.decode([t for t in r.labels if t != IGNORE]) for r in rows)
    assert answers == sorted(f" {a + b}" for a in range(3) for b in range(4))  # the target delimiter, then the answer
    for row in rows:
        masked = [i for i, t in enumerate(row.labels) if t == IGNORE]
        assert masked == list(range(len(masked))) and row.labels[len(masked) :] == row.input_ids[len(masked) :]
        context = tokenizer.decode(row.input_ids[: len(masked)])
        assert context.count("Q: ") == 6 and context.endswith("A:")  # 5 shots from the few-shot split, then the doc


def test_a_shipped_task_trains_on_its_train_split_never_its_test_split(full, monkeypatch):
    """`task:NAME:train` = the task's training docs (what AI2 fine-tunes on); its test docs are what eval scores."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    tokenizer = AutoTokenizer.from_pretrained(full)
    records = [json.loads(line) for line in (REPO / "recipes" / "tasks" / "data" / "answer_math.jsonl").read_text().splitlines()]
    train = [r["context"] + r["answer"] for r in records if r.get("split") == "train"]
    test = {r["context"] + r["answer"] for r in records if "split" not in r}  # the problems eval scores
    rows = training_rows(["task:emo_answer_math:train"], tokenizer, seq_len=512)
    problems = {"Question:" + tokenizer.decode(r.input_ids).rsplit("Question:", 1)[1] for r in rows}  # 5 shots, then the doc
    assert len(rows) == len(train) and problems == set(train) and problems.isdisjoint(test)
    answers = {tokenizer.decode([t for t in r.labels if t != IGNORE]) for r in rows}
    assert answers == {r["answer"] for r in records if r.get("split") == "train"}  # loss on the answer only
    assert all(r.source == "task:emo_answer_math:train" for r in rows)
    for refused, fragment in (("", "it has task:emo_answer_math:train"), (":test", "for scoring, never")):
        with pytest.raises(CalibrationError, match=fragment):
            training_rows([f"task:emo_answer_math{refused}"], tokenizer, 32)
    with pytest.raises(CalibrationError, match="never for training"):
        training_rows(["task:emo_ppl_math:train"], tokenizer, 32)  # a scoring task with a test split only


def test_a_task_file_calibrates_under_its_file_name(task_file, monkeypatch):
    from emo_prune.calib import load_documents

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    documents = load_documents([f"task:{task_file}"])
    assert len(documents) == 12 and {d.domain for d in documents} == {"sums"}  # what `profile --calib` sees
    assert sorted(d.text.rsplit("A: ", 1)[-1] for d in documents) == sorted(str(a + b) for a in range(3) for b in range(4))


def test_a_task_file_gives_the_same_rows_every_run(full, task_file, monkeypatch):
    """Few-shot prompts are sampled: seeded, so a resumed run and the manifest's data digest see the same data."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    tokenizer = AutoTokenizer.from_pretrained(full)
    digests = {data_digest(training_rows([f"task:{task_file}"], tokenizer, seq_len=256)) for _ in range(3)}
    assert len(digests) == 1
