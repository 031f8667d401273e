"""A recipe's `plans:` section: other tools' plan files next to each build, resumable, refused when unexpressible."""

from __future__ import annotations

import json

import yaml
from pipeline_recipes import fast_recipe
from typer.testing import CliRunner

from emo_prune.cli import app
from emo_prune.cli.console import out
from emo_prune.select import Plan


def invoke(*args):
    out.json_mode = out.quiet = out.debug = False
    return CliRunner().invoke(app, [str(a) for a in args])


def quick(model, **changes) -> dict:
    """fast_recipe without verify and eval: only profile, select, extract and the plan files run."""
    return fast_recipe(model, verify={"enabled": False}, eval={"tasks": []}, gates=[], **changes)


def test_plan_files_are_written_next_to_each_build(small_emo, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    formats = ["vllm", "vllm-ascend", "llama-expert-stats", "ai2"]
    recipe.write_text(yaml.safe_dump(quick(small_emo, selection={"method": "easy_ep"}, plans={"formats": formats})))
    result = invoke("run", recipe, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    builds = tmp_path / "out" / "builds"
    for name, label in (("tiny-test-math-25pct", "25pct"), ("tiny-test-math-12.5pct", "12.5pct")):
        kept = Plan.load(tmp_path / "out" / "plans" / f"{label}.json").experts_kept_per_layer
        pruned = json.loads((builds / f"{name}.vllm.json").read_text())["pruned_experts"]
        assert sorted(pruned) == sorted([l, e] for l, ids in enumerate(kept) for e in range(16) if e not in ids)
        assert json.loads((builds / f"{name}.ai2.json").read_text())["experts_kept_per_layer"] == kept
        lines = [json.loads(line) for line in (builds / f"{name}.vllm-ascend.jsonl").read_text().splitlines()]
        keep = 4 if label == "25pct" else 2  # 16 experts; the shared expert 15 leads each ranking
        assert [sorted(next(iter(line.values()))[:keep]) for line in lines] == [sorted(ids) for ids in kept]
        assert (builds / f"{name}.llama-expert-stats.json").exists()
    again = invoke("run", recipe, "--out", tmp_path / "out")
    plan_steps = [line for line in again.output.splitlines() if line.lstrip().startswith("plans/")]
    assert again.exit_code == 0 and len(plan_steps) == 8 and all("skipped (up to date)" in line for line in plan_steps), (
        again.output
    )


def test_vllm_ascend_needs_a_profile_method(small_emo, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(quick(small_emo, selection={"method": "random"}, plans={"formats": ["vllm-ascend"]})))
    result = invoke("run", recipe, "--out", tmp_path / "out")
    assert result.exit_code == 1 and "plans.formats: vllm-ascend ranks experts from the profile" in result.output
    assert not (tmp_path / "out").exists()
