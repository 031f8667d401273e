"""The recipe's `edge` section: GGUF files next to each build, sized and scored in llama.cpp, gated."""

from __future__ import annotations

import json

import pytest
import yaml
from optional import require
from pipeline_recipes import fast_recipe
from typer.testing import CliRunner

from emo_prune.cli import app
from emo_prune.cli.console import out
from emo_prune.errors import RecipeError
from emo_prune.pipeline import validate_recipe


def invoke(*args):
    out.json_mode = out.quiet = out.debug = False
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"edge": {"dtypes": ["q3"]}}, "edge.dtypes"),  # not a GGUF dtype
        ({"edge": {"formats": ["onnx"], "dtypes": ["q8_0"]}}, "edge.formats"),  # not a format
        ({"edge": {"dtypes": ["q8_0"]}, "selection": {"budget": "global"}}, "set selection.budget: uniform"),  # ragged
        ({"gates": [{"task": "emo_ppl_math", "max_drop": 1.0, "edge": "q4_k_m"}]}, "gates.0.edge"),  # no such file
    ],
)
def test_edge_recipe_validation(small_emo, change, words):
    with pytest.raises(RecipeError, match=words.replace(".", r"\.")):
        validate_recipe(fast_recipe(small_emo, **change))


def test_edge_files_next_to_builds(small_emo, tmp_path):
    """Without scoring (edge.eval false) the run needs no llama.cpp: files, sizes, the report table."""
    recipe = fast_recipe(small_emo, budgets=[0.25], eval={"tasks": []}, gates=[], edge={"dtypes": ["f16", "q8_0"], "eval": False})
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    result = invoke("run", tmp_path / "r.yaml", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    build = tmp_path / "out" / "builds" / "tiny-test-math-25pct"
    files = {p.name for p in build.parent.glob("*.gguf")}
    assert files == {"tiny-test-math-25pct-f16.gguf", "tiny-test-math-25pct-q8_0.gguf"}
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    edge = {e["dtype"]: e for e in report["builds"][0]["edge"]}
    assert edge["q8_0"]["bytes"] < edge["f16"]["bytes"]
    assert "## Edge files" in (tmp_path / "out" / "report.md").read_text()
    again = invoke("--json", "run", tmp_path / "r.yaml", "--out", tmp_path / "out")
    assert all(s["status"] == "skipped" for s in json.loads(again.stdout)["steps"])


def test_edge_files_scored_in_llama_cpp_and_gated(small_emo, tmp_path):
    require("llama_cpp")
    recipe = fast_recipe(
        small_emo,
        budgets=[0.25],
        eval={"tasks": ["emo_ppl_math"], "limit": 2, "batch_size": 4, "impl": "eager"},
        gates=[{"task": "emo_ppl_math", "min_retained": 0.01}, {"task": "emo_ppl_math", "min_retained": 0.01, "edge": "q8_0"}],
        edge={"dtypes": ["q8_0"]},
    )
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    result = invoke("run", tmp_path / "r.yaml", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    build = report["builds"][0]
    edge = build["edge"][0]
    assert edge["eval"]["settings"]["runtime"].startswith("llama.cpp")
    (row,) = edge["vs_build"]
    assert row["metric"] == "bits_per_byte" and abs(row["value"] - row["baseline"]) < 0.05  # q8_0 ~ the build
    assert [g["build"] for g in build["gates"]] == ["tiny-test-math-25pct", "tiny-test-math-25pct-q8_0.gguf"]


def test_ci_example_publishes_the_gguf_files():
    from pathlib import Path

    workflow = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / "ci" / "prune-edge.yml").read_text())
    steps = workflow["jobs"]["prune"]["steps"]
    commands = " ".join(s.get("run", "") for s in steps)
    uploads = [s["with"]["path"] for s in steps if s.get("uses", "").startswith("actions/upload-artifact")]
    # EMO_PRUNE_EXTRAS: "edge" installs emo-prune[edge]; the builds upload holds the GGUF files beside the folders
    assert "EMO_PRUNE_EXTRAS" in workflow["env"] and "[${EMO_PRUNE_EXTRAS}]" in commands
    assert "runs/*/builds/" in uploads
