"""A recipe's `finetune:` section: each build is fine-tuned after verify, both are evaluated, the report
shows scores before and after, gates judge the fine-tuned build unless told `finetuned: false`, and a
second run skips every finished step."""

from __future__ import annotations

import json

import pytest
import yaml
from pipeline_recipes import fast_recipe
from typer.testing import CliRunner

from emo_prune.cli import app
from emo_prune.cli.console import out
from emo_prune.errors import RecipeError
from emo_prune.pipeline import validate_recipe

FINETUNE = {"sources": ["builtin:math:train"], "max_tokens": 2000, "batch_size": 4, "seq_len": 64, "lr": 0.01, "warmup": 0.0}


def invoke(*args):
    out.json_mode = out.quiet = out.debug = False
    return CliRunner().invoke(app, [str(a) for a in args])


def test_finetune_section_runs_after_verify_and_reports_both(small_emo, tmp_path):
    gates = [{"task": "emo_ppl_math", "min_retained": 0.01}, {"task": "emo_ppl_math", "min_retained": 0.01, "finetuned": False}]
    recipe = fast_recipe(small_emo, budgets=[0.25], finetune=FINETUNE, gates=gates)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = invoke("run", path, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "out"
    report = json.loads((run_dir / "report.json").read_text())
    steps = [s["step"] for s in report["steps"]]
    name = "tiny-test-math-25pct"
    assert steps.index(f"verify/{name}") < steps.index(f"finetune/{name}") < steps.index(f"eval/{name}-ft")
    build = report["builds"][0]
    assert build["finetuned"].endswith(f"builds/{name}-ft") and build["finetuned_comparison"] and build["comparison"]
    manifest = json.loads((run_dir / "builds" / f"{name}-ft" / "emo_prune.json").read_text())
    assert manifest["finetune"]["sources"] == ["builtin:math:train"] and manifest["experts_kept_per_layer"]
    assert [g["build"] for g in build["gates"]] == [f"{name}-ft", name]
    assert "(fine-tuned)" in (run_dir / "report.md").read_text()
    again = invoke("run", path, "--out", run_dir, "--json")
    assert again.exit_code == 0, again.output
    assert {s["status"] for s in json.loads(again.stdout)["steps"]} == {"skipped"}


def test_a_bad_finetune_field_names_it(small_emo):
    with pytest.raises(RecipeError, match="finetune"):
        validate_recipe(fast_recipe(small_emo, finetune={**FINETUNE, "train": "routers"}))
    with pytest.raises(RecipeError, match="finetune"):
        validate_recipe(fast_recipe(small_emo, finetune={"max_tokens": 10}))  # no sources


def test_the_edge_step_exports_the_finetuned_build(small_emo, tmp_path):
    recipe = fast_recipe(
        small_emo, budgets=[0.25], eval={"tasks": []}, gates=[], edge={"dtypes": ["f16"], "eval": False}, finetune=FINETUNE
    )
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = invoke("run", path, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    (edge,) = json.loads((tmp_path / "out" / "report.json").read_text())["builds"][0]["edge"]
    assert edge["file"].endswith("builds/tiny-test-math-25pct-ft-f16.gguf")
