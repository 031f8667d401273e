"""Recipes and the pipeline runner: one YAML file -> profile, select, extract, verify, eval, gates."""

from emo_prune.pipeline.gates import GateResult, check_gate
from emo_prune.pipeline.recipe import Recipe, apply_overrides, budget_label, load_recipe, validate_recipe
from emo_prune.pipeline.report import BuildReport, RunReport
from emo_prune.pipeline.runner import run_recipe

__all__ = [
    "BuildReport",
    "GateResult",
    "Recipe",
    "RunReport",
    "apply_overrides",
    "budget_label",
    "check_gate",
    "load_recipe",
    "run_recipe",
    "validate_recipe",
]
