"""Fixtures of the eval tests: the tiny EMO model, a hand-made task folder, a private hash cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from eval_data import MC_DOCS, PPL_DOCS

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def emo_model(tiny_zoo: dict[str, Path]) -> Path:
    """The shared tiny EMO checkpoint (2 layers, 8 experts with 1 shared, top-2); read-only."""
    return tiny_zoo["emo"]


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
