"""Fixtures of the eval tests: one tiny EMO model, a hand-made task folder, a private hash cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

PPL_DOCS = [
    "def add(a, b):\n    return a + b\n",
    "The experts that a domain never uses can be removed.",
    "Question: What is 6 * 7? Answer: 6 * 7 = 42.",
]
MC_DOCS = [
    {"question": "What is 2 + 2?", "choices": ["4", "5", "22"], "label": 0},
    {"question": "What is 3 * 3?", "choices": ["6", "9"], "label": 1},
    {"question": "Solve x + 1 = 3.", "choices": ["x = 1", "x = 2", "x = 3", "x = 4"], "label": 1},
]


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory):
    mp = pytest.MonkeyPatch()
    mp.setenv("EMO_PRUNE_CACHE", str(tmp_path_factory.mktemp("eval-cache")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def emo_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from emo_prune.testing import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("emo") / "model", "emo", layers=2, hidden=64, experts=8, top_k=2)


@pytest.fixture(scope="session")
def task_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """t_ppl (rolling loglikelihood) and t_mc (multiple choice) over the docs above, loaded like ours."""
    root = tmp_path_factory.mktemp("tasks")
    shutil.copy(REPO / "recipes" / "tasks" / "utils.py", root / "utils.py")
    (root / "ppl.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in PPL_DOCS))
    (root / "mc.jsonl").write_text("".join(json.dumps(d) + "\n" for d in MC_DOCS))
    (root / "t_ppl.yaml").write_text(
        "task: t_ppl\ncustom_dataset: !function utils.load_jsonl\ndataset_kwargs:\n  data_file: ppl.jsonl\n"
        "test_split: test\noutput_type: loglikelihood_rolling\ndoc_to_text: ''\ndoc_to_target: text\n"
        "metric_list:\n  - metric: bits_per_byte\n  - metric: word_perplexity\n"
    )
    (root / "t_mc.yaml").write_text(
        "task: t_mc\ncustom_dataset: !function utils.load_jsonl\ndataset_kwargs:\n  data_file: mc.jsonl\n"
        "test_split: test\noutput_type: multiple_choice\ndoc_to_text: 'Question: {{question}}\\nAnswer:'\n"
        "doc_to_choice: choices\ndoc_to_target: label\nmetric_list:\n  - metric: acc\n"
    )
    return root
