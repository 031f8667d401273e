"""Expert selection: scores from a profile (or greedy, on the model), budgets, and the plan file."""

from emo_prune.common.lazy import exports_of, lazy_exports

_EXPORTS = exports_of(
    {
        "emo_prune.select.budget": ["BUDGETS"],
        "emo_prune.profile.report": ["coverage"],
        "emo_prune.select.greedy_settings": ["GreedySettings"],
        "emo_prune.select.keep": ["Keep", "keep_counts"],
        "emo_prune.select.masking": ["masked_experts"],
        "emo_prune.select.plan": ["PLAN_KEY", "Kept", "Plan", "canonical_order", "validate_plan"],
        "emo_prune.common.constants": ["COMBINES", "METHODS"],
        "emo_prune.select.selector": ["SelectOptions", "make_plan", "select_experts"],
    }
)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
