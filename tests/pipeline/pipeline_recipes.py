"""A recipe for the pipeline tests that runs every step in seconds on the `small_emo` model."""

from __future__ import annotations

from pathlib import Path


def fast_recipe(model: Path, **changes) -> dict:
    """A recipe that runs every step in seconds: short math documents, 3 eval documents per task."""
    recipe = {
        "name": "tiny-test",
        "model": str(model),
        "calibration": {
            "sources": ["builtin:math:train"],
            "domains": ["math"],
            "max_tokens": 1500,
            "seq_len": 128,
            "device": "cpu",
        },
        "selection": {"method": "mass"},
        "budgets": [0.25, 0.125],
        "output": {"pattern": "{name}-{domains}-{budget}"},
        "verify": {"prompts": 2},
        "eval": {"tasks": ["emo_ppl_math", "emo_math_mc"], "limit": 3, "batch_size": 4, "impl": "eager"},
        "gates": [{"task": "emo_ppl_math", "min_retained": 0.5}, {"task": "emo_math_mc", "max_drop": 1.0}],
    }
    recipe.update(changes)
    return recipe
