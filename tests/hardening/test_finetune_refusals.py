"""`finetune` and `merge-back` refusals: one line on stderr, exit 1, no traceback, nothing written anywhere
(no output, no checkpoint folder), the inputs untouched."""

from __future__ import annotations

import json

import pytest
from hardening_helpers import one_line_error, snapshot

from emo_prune.extract import extract
from emo_prune.select import Plan


@pytest.fixture
def setup(source_model, tiny, tmp_path):
    """A build of `source_model` and training files under tmp_path/in; outputs go to tmp_path/work."""
    root = tmp_path / "in"
    root.mkdir()
    extract(source_model, Plan([[1, 4, 6, 7], [1, 4, 6, 7]]), root / "build")
    (root / "text.jsonl").write_text("".join(json.dumps({"text": f"def f(x):\n    return x + {i}\n"}) + "\n" for i in range(8)))
    (root / "empty.jsonl").write_text(json.dumps({"text": "  "}) + "\n")
    (root / "no-answer.jsonl").write_text(json.dumps({"context": "Question: 2 + 2?"}) + "\n")
    (root / "empty-answer.jsonl").write_text(json.dumps({"context": "Question: 2 + 2?", "answer": ""}) + "\n")
    Plan([[6, 7], [6, 7]]).save(root / "shared-only.json")  # for a model whose experts 6 and 7 are shared
    (tmp_path / "work").mkdir()
    return root, tmp_path / "work"


CASES = {
    "output exists": (["{build}", "--calib", "{text}", "--out", "{exists}"], "already exists"),
    "empty data": (["{build}", "--calib", "{empty}", "--out", "{out}"], "no non-empty document"),
    "answers missing": (["{build}", "--calib", "{no_answer}", "--out", "{out}"], '"answer"'),
    "answers empty": (["{build}", "--calib", "{empty_answer}", "--out", "{out}"], "answer tokens"),
    "nothing trainable": (
        ["{two_shared}", "--calib", "{text}", "--train", "experts", "--experts-of", "{shared_only}", "--out", "{out}"],
        "nothing to train",
    ),
    "unknown mode": (["{build}", "--calib", "{text}", "--train", "routers", "--out", "{out}"], "--train"),
    "lora on some rows": (["{build}", "--calib", "{text}", "--train", "experts", "--lora", "4", "--out", "{out}"], "--lora"),
    "warmup out of range": (["{build}", "--calib", "{text}", "--warmup", "1.5", "--out", "{out}"], "--warmup"),
    "less than one step": (
        ["{build}", "--calib", "{text}", "--batch-size", "64", "--out", "{out}"],
        "fewer than one optimizer step",
    ),
    "task offline": (["{build}", "--calib", "task:arc_easy", "--out", "{out}"], "cannot load lm-eval task"),
    "task without validation split": (
        ["{build}", "--calib", "task:emo_answer_math", "--out", "{out}"],
        "it has task:emo_answer_math:train",
    ),
    "task without train split": (["{build}", "--calib", "task:emo_ppl_math:train", "--out", "{out}"], "never for training"),
    "task test split": (["{build}", "--calib", "task:emo_answer_math:test", "--out", "{out}"], "for scoring, never"),
    "task file missing": (["{build}", "--calib", "task:{missing_task}", "--out", "{out}"], "no such task YAML file"),
    "no source": (["{build}", "--calib", "builtin:nope", "--out", "{out}"], "builtin"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_finetune_refusals(cli, tiny, source_model, setup, case):
    root, work = setup
    (work / "exists").mkdir()
    values = {
        "build": root / "build", "two_shared": tiny("emo", shared=2), "text": root / "text.jsonl", "empty": root / "empty.jsonl",
        "no_answer": root / "no-answer.jsonl", "empty_answer": root / "empty-answer.jsonl",
        "shared_only": root / "shared-only.json", "out": work / "out", "exists": work / "exists",
        "missing_task": root / "nope.yaml",
    }  # fmt: skip
    args, fragment = CASES[case]
    before, model_before = snapshot(work.parent), snapshot(source_model)
    result = cli(
        "finetune", "--batch-size", "2", "--seq-len", "16", *[a.format(**values) for a in args]
    )  # a case's own flags win
    one_line_error(result, fragment)
    assert snapshot(work.parent) == before and snapshot(source_model) == model_before


def test_merge_back_refuses_a_build_of_another_model(cli, tiny, source_model, setup):
    root, work = setup
    other = tiny("emo", seed=3)
    extract(other, Plan([[1, 4, 6, 7], [1, 4, 6, 7]]), root / "other-build")
    before = snapshot(work.parent)
    one_line_error(cli("merge-back", source_model, root / "other-build", "--out", work / "merged"), "was not cut from")
    one_line_error(cli("merge-back", source_model, root / "build", "--out", work / "m", "--alpha", "0"), "--alpha")
    one_line_error(cli("merge-back", source_model, other, "--out", work / "m"), "has no emo_prune.json")
    assert snapshot(work.parent) == before
