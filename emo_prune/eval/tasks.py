"""Where lm-eval finds tasks: the offline tasks shipped in `recipes/tasks/`, user folders, lm-eval's own.

Indexing lm-eval's ~15k built-in task configs takes seconds, so a TaskManager over only our folders is
tried first and the full one (cached per process) is built only for names outside them.
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


@cache
def _manager(paths: tuple[str, ...], include_defaults: bool):  # noqa: ANN202 (lm_eval TaskManager)
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=list(paths) or None, include_defaults=include_defaults)


def task_manager(tasks: list[str], include_paths: list[str | Path] = ()):  # noqa: ANN201
    """A TaskManager that knows every name in `tasks` (ours first, then lm-eval's own); EvalError if none does."""
    paths = [builtin_tasks_dir(), *(Path(p) for p in include_paths)]
    for path in paths:
        if not path.is_dir():
            raise EvalError(f"task include path {path} is not a folder")
    key = tuple(str(p.resolve()) for p in paths)
    with quiet_lm_eval():
        manager = _manager(key, False)
        if any(t not in manager.all_tasks and not t.endswith(".yaml") for t in tasks):
            manager = _manager(key, True)
    unknown = [t for t in tasks if t not in manager.all_tasks and not Path(t).is_file()]
    if unknown:
        ours = sorted(_manager(key, False).all_tasks)
        raise EvalError(
            f"unknown lm-eval task(s): {', '.join(unknown)}; the offline tasks are {', '.join(ours)} "
            f"(`lm-eval ls tasks` lists lm-eval's own; add folders of task YAMLs with --include-path)"
        )
    from emo_prune.eval.taskdata_check import check_task_data

    check_task_data(manager, tasks)  # data that cannot load offline: refused now, not after retries
    return manager
