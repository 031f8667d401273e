"""`emo-prune run` end to end on a small EMO model with the offline tasks: reports, resume, gates, errors."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from pipeline_recipes import fast_recipe
from typer.testing import CliRunner

from emo_prune.cli import app
from emo_prune.cli.console import out
from emo_prune.eval import ModelEval, compare_metric
from emo_prune.pipeline import validate_recipe


def invoke(*args):
    out.json_mode = out.quiet = out.debug = False
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def first_run(small_emo, tmp_path_factory):
    """One full run; tests that change it work on a copy."""
    root = tmp_path_factory.mktemp("run")
    recipe = root / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(fast_recipe(small_emo)))
    result = invoke("run", recipe, "--out", root / "out")
    return recipe, root / "out", result


def _report(run_dir):
    return json.loads((run_dir / "report.json").read_text())


def test_end_to_end(first_run, small_emo):
    recipe_file, run_dir, result = first_run
    assert result.exit_code == 0, result.output
    report = _report(run_dir)
    assert report["passed"] is True and report["failed_gates"] == []
    assert [s["status"] for s in report["steps"]] == ["ran"] * 10
    assert [s["step"] for s in report["steps"]][:4] == [
        "profile",
        "eval/baseline",
        "select/25pct",
        "extract/tiny-test-math-25pct",
    ]
    for name in ("profile.safetensors", "plans/25pct.json", "plans/12.5pct.json", "eval/baseline.json", "report.md"):
        assert (run_dir / name).is_file(), name
    builds = {b["label"]: b for b in report["builds"]}
    assert set(builds) == {"25pct", "12.5pct"}
    assert builds["25pct"]["kept_counts"] == [4, 4] and builds["12.5pct"]["kept_counts"] == [2, 2]
    baseline = ModelEval.from_dict(json.loads((run_dir / "eval" / "baseline.json").read_text()))
    assert baseline.model["path"] == str(small_emo.resolve())
    for label, build in builds.items():
        folder = run_dir / "builds" / f"tiny-test-math-{label}"
        assert (folder / "config.json").is_file() and (folder / "emo_prune.json").is_file()
        assert build["verify"]["max_abs_diff"] <= 1e-4
        scores = ModelEval.from_dict(json.loads((run_dir / "eval" / f"{folder.name}.json").read_text()))
        assert scores.model["path"] == str(folder.resolve())
        # each gate verdict, recomputed from the two eval files with the documented rule
        for gate in build["gates"]:
            task = gate["task"]
            name = scores.tasks[task].primary
            row = compare_metric(
                task,
                name,
                scores.tasks[task].metrics[name].higher_is_better,
                scores.tasks[task].metrics[name].value,
                baseline.tasks[task].metrics[name].value,
            )
            assert (gate["drop"], gate["retained"]) == (row.drop, row.retained)
    # the resolved recipe is the recipe, re-loadable, stamped with the tool version
    resolved = (run_dir / "recipe.resolved.yaml").read_text()
    assert resolved.startswith("# resolved by emo-prune")
    assert validate_recipe(yaml.safe_load(resolved)) == validate_recipe(yaml.safe_load(recipe_file.read_text()))
    assert "## Gates" in (run_dir / "report.md").read_text()


def test_rerun_skips_every_finished_step(first_run, tmp_path):
    recipe_file, run_dir, _ = first_run
    copy = tmp_path / "out"
    shutil.copytree(run_dir, copy)
    result = invoke("run", recipe_file, "--out", copy)
    assert result.exit_code == 0, result.output
    assert [s["status"] for s in _report(copy)["steps"]] == ["skipped"] * 10
    assert result.output.count(": skipped (up to date)\n") == 10


def test_failing_gate_exits_1_with_one_line_per_gate(first_run, tmp_path):
    """Changing the eval settings re-runs only the evaluations; an impossible gate fails for both builds."""
    recipe_file, run_dir, _ = first_run
    copy = tmp_path / "out"
    shutil.copytree(run_dir, copy)
    impossible = "gates=[{task: emo_math_mc, min_retained: 5.0}]"
    result = invoke("run", recipe_file, "--out", copy, "--set", "eval.limit=2", "--set", impossible)
    assert result.exit_code == 1
    failed = [line for line in result.output.splitlines() if "min_retained 500.00%" in line]
    assert len(failed) == 2 and "quality gate failed: 2 of 2 gates failed" in result.output
    statuses = {s["step"]: s["status"] for s in _report(copy)["steps"]}
    assert {k for k, v in statuses.items() if v == "ran"} == {
        "eval/baseline",
        "eval/tiny-test-math-25pct",
        "eval/tiny-test-math-12.5pct",
    }
    assert _report(copy)["passed"] is False and len(_report(copy)["failed_gates"]) == 2


def test_malformed_recipe_names_the_field(small_emo, write_recipe, tmp_path):
    bad = write_recipe({**fast_recipe(small_emo), "budgets": [0.25, 2.5], "selection": {"metod": "mass"}})
    result = invoke("run", bad, "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert (
        "recipe error:" in result.output and "budgets.1:" in result.output and "selection.metod: unknown field" in result.output
    )
    assert not (tmp_path / "out").exists()  # nothing is written for a recipe that does not validate
    good = write_recipe(fast_recipe(small_emo), "good.yaml")
    result = invoke("run", good, "--out", tmp_path / "out", "--set", "eval.batch_size=0")
    assert result.exit_code == 1 and "eval.batch_size:" in result.output
