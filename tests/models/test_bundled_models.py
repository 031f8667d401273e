"""The two bundled trained models: what they are, that pruning them is exact, and that the EMO one
keeps its domain quality where its standard twin does not (examples/experiments/modularity_table.py in small)."""

from __future__ import annotations

import json

import pytest

from emo_prune.eval import EvalSettings, evaluate_model
from emo_prune.extract import extract
from emo_prune.io.summary import inspect_model
from emo_prune.models.builtin import resolve_model
from emo_prune.profile import ProfileSettings, profile_to_file
from emo_prune.select import SelectOptions, make_plan
from emo_prune.verify import verify

MODELS = {"emo": "builtin:emo-small", "standard": "builtin:stdmoe-small"}


@pytest.mark.parametrize("objective", sorted(MODELS))
def test_bundled_model_is_an_emo_checkpoint_with_provenance(objective):
    path = resolve_model(MODELS[objective])
    summary = inspect_model(path)
    assert (summary.family, summary.num_layers, summary.top_k, set(summary.dtypes)) == ("emo", 4, 4, {"BF16"})
    record = json.loads((path / "training.json").read_text())
    assert record["train_config"]["objective"] == objective and record["train_config"]["steps"] == 2000
    assert (path / "tokenizer.json").exists()


@pytest.fixture(scope="module")
def code_subsets(tmp_path_factory):
    """{objective: (model_dir, 25% code build)} from a small code profile of each bundled model."""
    work = tmp_path_factory.mktemp("bundled")
    builds = {}
    for objective, ref in MODELS.items():
        model_dir = resolve_model(ref)
        profile = work / f"{objective}.safetensors"
        profile_to_file(model_dir, ["builtin:code:calib"], profile, settings=ProfileSettings(max_tokens=20_000, seq_len=256))
        plan = make_plan(model_dir, SelectOptions(keep="0.25", domains=("code",)), profile_path=profile)
        builds[objective] = (model_dir, extract(model_dir, plan, work / f"{objective}-code-25").out_dir)
    return builds


def test_pruned_bundled_model_equals_masked_original(code_subsets):
    original, pruned = code_subsets["emo"]
    report = verify(original, pruned, num_prompts=2)
    assert report.passed and report.max_abs_diff <= 1e-4


def test_emo_keeps_its_code_quality_where_the_standard_moe_does_not(code_subsets):
    settings = EvalSettings(tasks=("emo_ppl_code",), limit=8, impl="eager", dtype="float32")

    def bits_per_byte(model_dir):
        return evaluate_model(model_dir, settings).tasks["emo_ppl_code"].metrics["bits_per_byte"].value

    retained = {name: bits_per_byte(full) / bits_per_byte(build) for name, (full, build) in code_subsets.items()}
    # measured on all held-out code (README table): EMO 0.98, standard 0.74
    assert retained["emo"] > 0.9 and retained["emo"] > retained["standard"] + 0.1, retained
