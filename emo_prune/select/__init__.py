"""Expert selection: scores from a profile (or greedy, on the model), budgets, and the plan file."""

from emo_prune.select.budget import BUDGETS
from emo_prune.profile.report import coverage
from emo_prune.select.greedy import GreedySettings
from emo_prune.select.keep import Keep, keep_counts
from emo_prune.select.masking import masked_experts
from emo_prune.select.plan import PLAN_KEY, Kept, Plan, canonical_order, validate_plan
from emo_prune.select.scores import COMBINES, METHODS
from emo_prune.select.selector import SelectOptions, make_plan, select_experts

__all__ = [
    "BUDGETS",
    "COMBINES",
    "METHODS",
    "PLAN_KEY",
    "GreedySettings",
    "Keep",
    "Kept",
    "Plan",
    "SelectOptions",
    "canonical_order",
    "coverage",
    "keep_counts",
    "make_plan",
    "masked_experts",
    "select_experts",
    "validate_plan",
]
