"""Recipe schema: shipped recipes validate, bad fields are named, --set overrides, budget labels."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pipeline_recipes import fast_recipe

from emo_prune.errors import RecipeError
from emo_prune.io import Checkpoint
from emo_prune.models.loading import resolve_seq_len
from emo_prune.pipeline import apply_overrides, budget_label, load_recipe, validate_recipe
from emo_prune.pipeline.recipe import find_recipe
from emo_prune.select import GreedySettings

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_recipes_validate(path):
    recipe, found = load_recipe(path)
    assert found == path and recipe.budgets and recipe.eval.tasks
    # a resolved recipe reads back as the same recipe
    assert validate_recipe(yaml.safe_load(recipe.to_yaml("header"))) == recipe


def test_shipped_recipes_cover_the_issue():
    names = {p.stem for p in RECIPES.glob("*.yaml")}
    assert {"quickstart", "emo-code-edge", "emo-math-edge"} <= names
    assert any(load_recipe(RECIPES / f"{n}.yaml")[0].model.lower().startswith("allenai/olmoe") for n in names)
    assert find_recipe(None) == RECIPES / "quickstart.yaml"  # `emo-prune run` alone runs the quickstart
    assert find_recipe("emo-code-edge") == RECIPES / "emo-code-edge.yaml"


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"budgets": [0.25, 1.5]}, "budgets.1", "a fraction must be in (0, 1]"),
        ({"budgets": [0.25, "lots"]}, "budgets.1", "neither a fraction"),
        ({"budgets": [0.25, 0.25]}, "budgets", "listed twice"),
        ({"budgets": []}, "budgets", "at least one budget"),
        ({"selection": {"method": "best"}}, "selection.method", "'best' is not one of mass"),
        ({"calibration": {"source": ["builtin:code"]}}, "calibration.source", "unknown field"),
        ({"eval": {"tasks": ["emo_ppl_math"], "limit": 0}}, "eval.limit", "greater than 0"),
        ({"gates": [{"task": "emo_ppl_math"}]}, "gates.0", "give max_drop"),
        ({"gates": [{"task": "arc_easy", "max_drop": 0.1}]}, "gates.0.task", "'arc_easy' is not in eval.tasks"),
        ({"gates": [{"task": "emo_ppl_math", "max_drop": 0.1, "budgets": [0.5]}]}, "gates.0.budgets", "0.5 is not in budgets"),
        ({"output": {"pattern": "{name}"}}, "output.pattern", "must contain {budget}"),
        ({"output": {"pattern": "{name}-{budget}-{colour}"}}, "output.pattern", "unknown field(s) colour"),
        ({"name": "my run"}, "name", "letters, digits"),
        ({"model": None}, "model", "valid string"),
    ],
)
def test_bad_fields_are_named(change, field, message):
    data = {**fast_recipe(Path("m")), **change}
    with pytest.raises(RecipeError) as info:
        validate_recipe(data, where="r.yaml")
    text = str(info.value)
    assert text.startswith("r.yaml: ") and f"{field}: " in text and message in text, text


def test_missing_and_misnamed_top_level_fields():
    with pytest.raises(RecipeError, match=r"calibration: required field is missing.*budgets: required field"):
        validate_recipe({"name": "x", "model": "m"})
    with pytest.raises(RecipeError, match="budget: unknown field"):
        validate_recipe({**fast_recipe(Path("m")), "budget": [0.5]})
    with pytest.raises(RecipeError, match="must be a mapping"):
        validate_recipe(["not", "a", "mapping"])


def test_unreadable_files(tmp_path):
    with pytest.raises(RecipeError, match="recipe not found"):
        load_recipe(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(bad)
    with pytest.raises(RecipeError, match="no shipped recipe of that name"):
        find_recipe("no-such-recipe")


def test_overrides(write_recipe):
    path = write_recipe(fast_recipe(Path("m")))
    recipe, _ = load_recipe(
        path, ["budgets=[0.5]", "eval.limit=7", "gates.1.max_drop=0.05", "verify.enabled=false", "selection.seed=3"]
    )
    assert recipe.budgets == (0.5,) and recipe.eval.limit == 7 and recipe.gates[1].max_drop == 0.05
    assert recipe.verify.enabled is False and recipe.selection.seed == 3
    data = fast_recipe(Path("m"))
    assert apply_overrides(data, ["output.dtype=bfloat16"])["output"]["dtype"] == "bfloat16"
    assert "dtype" not in data["output"]  # the input is not modified
    with pytest.raises(RecipeError, match="eval.limt: unknown field"):
        load_recipe(path, ["eval.limt=3"])
    with pytest.raises(RecipeError, match="write key=value"):
        apply_overrides(data, ["eval.limit"])
    with pytest.raises(RecipeError, match="gates has no item 5"):
        apply_overrides(data, ["gates.5.max_drop=1"])


def test_budget_labels_and_build_names():
    assert [budget_label(b) for b in (0.25, 0.125, 1.0, 32)] == ["25pct", "12.5pct", "100pct", "k32"]
    recipe = validate_recipe(fast_recipe(Path("m"), budgets=[0.25, 16]))
    assert [recipe.build_folder(b) for b in recipe.budgets] == ["tiny-test-math-25pct", "tiny-test-math-k16"]
    only_first = validate_recipe(fast_recipe(Path("m"), gates=[{"task": "emo_math_mc", "max_drop": 0, "budgets": [0.25]}]))
    assert [len(only_first.gates_for(b)) for b in only_first.budgets] == [1, 0]


def test_ci_example_runs_a_recipe_and_uploads_builds_and_report():
    workflow = yaml.safe_load((RECIPES.parent / "examples" / "ci" / "prune-edge.yml").read_text())
    steps = workflow["jobs"]["prune"]["steps"]
    commands = " ".join(s.get("run", "") for s in steps)
    uploads = [s["with"]["path"] for s in steps if s.get("uses", "").startswith("actions/upload-artifact")]
    assert "emo-prune run" in commands and workflow["env"]["HF_HUB_OFFLINE"] == "1"
    assert any("report.json" in p for p in uploads) and any("builds" in p for p in uploads)


def test_greedy_reads_the_recipes_calibration_settings(small_emo):
    """`method: greedy` scores on the recipe's seq_len, batch size and device, not greedy's own defaults."""
    set_ = validate_recipe(fast_recipe(small_emo, selection={"method": "greedy"}))
    assert set_.calibration.greedy_settings(small_emo) == GreedySettings(seq_len=128, batch_size=8, device="cpu")
    # null seq_len = min(2048, the model's context), resolved as the profile step does; auto = cpu here
    unset = validate_recipe(fast_recipe(small_emo, calibration={"sources": ["builtin:math:calib"], "device": "auto"}))
    context = resolve_seq_len(None, Checkpoint.open(small_emo).config)
    assert unset.calibration.greedy_settings(small_emo) == GreedySettings(seq_len=context, batch_size=8, device="cpu")


def test_every_recipe_setting_reaches_the_library(small_emo):
    """Sections map to the library's settings by field name (`_Section.carried`): every field of a section
    must exist on its target, or a recipe value would be dropped without a word."""
    from dataclasses import fields

    from emo_prune.eval import EvalSettings
    from emo_prune.pipeline.recipe import Calibration, Eval, Selection
    from emo_prune.profile.runner import ProfileSettings
    from emo_prune.select import SelectOptions

    names = lambda cls: {f.name for f in fields(cls)}  # noqa: E731
    assert set(Eval.model_fields) <= names(EvalSettings)
    assert set(Calibration.model_fields) - {"sources", "domains"} <= names(ProfileSettings)  # those two: the profile's inputs
    assert set(Selection.model_fields) <= names(SelectOptions)

    recipe = validate_recipe(
        fast_recipe(
            small_emo,
            calibration={"sources": ["builtin:code:calib"], "seq_len": 64, "batch_size": 3, "seed": 5, "layerwise": True},
            selection={"method": "frequency", "combine": "weighted", "seed": 7, "domains": ["code"]},
            eval={"tasks": ["emo_ppl_code"], "limit": 3, "bootstrap_iters": 9, "coverage_warn": 0.5},
            gates=[{"task": "emo_ppl_code", "max_drop": 1.0}],
        )
    )
    profile = recipe.calibration.profile_settings()
    assert (profile.seq_len, profile.batch_size, profile.seed, profile.layerwise) == (64, 3, 5, True)
    options = recipe.select_options(small_emo, 0.25)
    assert (options.keep, options.method, options.combine, options.seed, options.domains) == (
        "0.25",
        "frequency",
        "weighted",
        7,
        ("code",),
    )
    assert options.calib == ("builtin:code:calib",) and options.greedy.seq_len == 64
    evaluation = recipe.eval.settings()
    assert (evaluation.limit, evaluation.bootstrap_iters, evaluation.coverage_warn) == (3, 9, 0.5)
