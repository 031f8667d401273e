"""The offline tasks: committed data = a fresh regeneration, every YAML loads offline, sane records."""

from __future__ import annotations

import json
import platform
import random
from pathlib import Path

import pytest

from emo_prune.calib import load_documents
from emo_prune.eval import taskdata
from emo_prune.eval.tasks import builtin_tasks_dir, task_manager

DATA = Path(__file__).resolve().parents[2] / "recipes" / "tasks" / "data"
OFFLINE = ("emo_ppl_code", "emo_ppl_prose", "emo_ppl_math", "emo_math_mc")


def _records(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines()]


def test_committed_data_equals_a_regeneration(tmp_path):
    manifest = json.loads((DATA / "MANIFEST.json").read_text())
    if manifest["python"] != platform.python_version():
        pytest.skip(f"data made on Python {manifest['python']}; builtin:code/prose differ on {platform.python_version()}")
    digests = taskdata.generate(tmp_path)
    assert digests == manifest["files"]
    for name in digests:
        assert (tmp_path / name).read_bytes() == (DATA / name).read_bytes(), name


def test_data_is_small_enough_to_commit():
    assert sum(p.stat().st_size for p in DATA.iterdir()) < 500_000


@pytest.mark.parametrize("corpus", ["code", "prose", "math"])
def test_perplexity_documents_are_held_out(corpus):
    heldout = [d.text.strip() for d in load_documents([f"builtin:{corpus}:heldout"])]
    docs = _records(f"ppl_{corpus}.jsonl")
    assert docs and all(0 < len(d["text"]) <= taskdata.MAX_CHARS for d in docs)
    assert all(any(h.startswith(d["text"]) for h in heldout) for d in docs)  # clipped held-out documents


def test_math_choices():
    records = _records("math_mc.jsonl")
    assert {r["split"] for r in records} == {"fewshot", "test"}
    assert sum(r["split"] == "test" for r in records) == taskdata.MC_TEST
    heldout = {d.text for d in load_documents(["builtin:math:heldout"])}
    for r in records:
        choices, label = r["choices"], r["label"]
        assert len(choices) == 1 + taskdata.DISTRACTORS == len(set(choices)) and 0 <= label < len(choices)
        if r["split"] == "test":
            assert f"Question: {r['question']}\nAnswer: {choices[label]}" in heldout


def test_distractors_change_the_results_only():
    answer = "Split 93 into 90 + 3. 99 * 90 = 8910 and 99 * 3 = 297. 8910 + 297 = 9207. The answer is 9207."
    wrong = taskdata.distractors(answer, random.Random(0))
    assert len(wrong) == 3
    for w in wrong:
        value = w.rsplit(" ", 1)[1].rstrip(".")
        assert value != "9207" and w == answer.replace("= 9207", f"= {value}").replace("is 9207", f"is {value}")
    assert taskdata.distractors("No final answer here.", random.Random(0)) == []


def test_every_offline_task_loads_offline():
    manager = task_manager(list(OFFLINE))
    loaded = manager.load(list(OFFLINE))["tasks"]
    assert set(loaded) == set(OFFLINE)
    assert len(list(loaded["emo_math_mc"].test_docs())) == taskdata.MC_TEST
    assert len(list(loaded["emo_math_mc"].fewshot_docs())) == taskdata.MC_FEWSHOT
    assert len(list(loaded["emo_ppl_math"].test_docs())) == taskdata.PPL_DOCS["math"]
    assert "emo_offline" in manager.all_tags and (builtin_tasks_dir() / "utils.py").is_file()


@pytest.mark.parametrize("corpus", ["code", "prose", "math"])
def test_answer_tasks_score_held_out_pairs_and_train_on_train_pairs(corpus):
    task = task_manager([f"emo_answer_{corpus}"]).load([f"emo_answer_{corpus}"])["tasks"][f"emo_answer_{corpus}"]
    test, train = list(task.test_docs()), list(task.training_docs())
    assert len(test) == taskdata.ANSWER_DOCS[corpus] and len(train) == taskdata.ANSWER_TRAIN[corpus]
    assert not task.has_validation_docs()  # `task:emo_answer_*` alone names no split it has: `:train` does
    if corpus == "math":  # a math pair is its whole problem: each comes from the split it claims
        problems = {part: {d.text for d in load_documents([f"builtin:math:{part}"])} for part in ("heldout", "train")}
        assert all(d["context"] + d["answer"] in problems["heldout"] for d in test)
        assert all(d["context"] + d["answer"] in problems["train"] for d in train)
