"""lm-eval's tasks: where their configs live (the offline tasks shipped in `recipes/tasks/`), the index of
them and of lm-eval's own, and the noise lm-eval makes while it reads them.

Here, below both `calib` (`task:` calibration and training sources) and `eval` (scoring), so the two
find the same tasks. Indexing lm-eval's ~15k built-in task configs takes seconds, so callers try an
index of only our folders first (`include_defaults=False`) and build the full one only for other names.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from emo_prune.errors import EvalError

# An installed wheel carries `recipes/` as package data at emo_prune/recipes/ (pyproject maps the
# package `emo_prune.recipes` to the folder); a source checkout has it at the top level.
INSTALLED_RECIPES = Path(__file__).resolve().parents[1] / "recipes"
REPO_RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def recipes_dir() -> Path:
    """The `recipes/` folder (`$EMO_PRUNE_RECIPES` overrides): recipes and `tasks/` of offline tasks."""
    if "EMO_PRUNE_RECIPES" in os.environ:
        path = Path(os.environ["EMO_PRUNE_RECIPES"])
    else:
        path = INSTALLED_RECIPES if INSTALLED_RECIPES.is_dir() else REPO_RECIPES
    if not path.is_dir():
        raise EvalError(f"recipes folder not found at {path}; set EMO_PRUNE_RECIPES to a folder of recipes")
    return path


def builtin_tasks_dir() -> Path:
    return recipes_dir() / "tasks"


@cache
def task_index(paths: tuple[str, ...], include_defaults: bool):  # noqa: ANN201 (lm_eval TaskManager)
    """lm-eval's TaskManager over the task folders `paths` (and its own tasks if `include_defaults`), once per process."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=list(paths) or None, include_defaults=include_defaults)


def is_task_file(name: str) -> bool:
    """A task named by the path of its YAML config (lm-eval loads such a file whatever its index holds)."""
    return name.endswith((".yaml", ".yml"))


def index_for(names: list[str], paths: tuple[str, ...]):  # noqa: ANN201 (lm_eval TaskManager)
    """The cheaper index that can load every name: the folders `paths` alone, or with lm-eval's own tasks."""
    ours = task_index(paths, False)
    if all(name in ours.all_tasks or is_task_file(name) for name in names):
        return ours
    return task_index(paths, True)


@contextmanager
def quiet_lm_eval(debug: bool = False) -> Iterator[None]:
    """lm-eval logs every config default it fills in as a warning; keep them for --debug. It also
    records `git describe` of the working directory (not the model's provenance), which prints
    "fatal: not a git repository" outside one: skipped unless --debug."""
    import lm_eval.evaluator

    logger = logging.getLogger("lm_eval")
    previous, git_hash = logger.level, lm_eval.evaluator.get_git_commit_hash
    logger.setLevel(logging.DEBUG if debug else logging.ERROR)
    if not debug:
        lm_eval.evaluator.get_git_commit_hash = lambda: None
    try:
        yield
    finally:
        logger.setLevel(previous)
        lm_eval.evaluator.get_git_commit_hash = git_hash
