"""What a recipe's steps will need, checked before its first step runs (issue 25: `run quickstart-edge`
without llama-cpp-python profiled, evaluated and exported for ~6 minutes before saying so).

  edge   llama-cpp-python, when the edge step scores files in llama.cpp or writes k-quants
  eval   every task known, and its data readable here (emo_prune.eval.taskdata_check)
Budgets, the model and the run folder are checked by `run_recipe` itself, before this.
"""

from __future__ import annotations

import importlib.util

from emo_prune.errors import ExportError
from emo_prune.pipeline.recipe import Recipe


def needs_llama_cpp(recipe: Recipe) -> bool:
    from emo_prune.export.quantize import K_QUANTS

    edge = recipe.edge
    return edge is not None and (edge.eval or any(dtype in K_QUANTS for dtype in edge.dtypes))


def check_recipe_needs(recipe: Recipe) -> None:
    """Refuse, before any step, a recipe whose later steps could not run here."""
    if needs_llama_cpp(recipe) and importlib.util.find_spec("llama_cpp") is None:
        from emo_prune.export.llama_cpp_binding import EXTRA

        raise ExportError(
            f"recipe {recipe.name}: its edge step needs llama-cpp-python, which is not installed: "
            f"pip install 'emo-prune[{EXTRA}]' (or run without the edge section: --set edge=null)"
        )
    if recipe.eval.tasks:
        from emo_prune.eval.tasks import task_manager

        task_manager(list(recipe.eval.tasks), list(recipe.eval.include_paths))
