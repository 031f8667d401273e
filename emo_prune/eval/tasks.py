"""Where lm-eval finds tasks for scoring: the offline tasks shipped in `recipes/tasks/`, user folders, lm-eval's own.

The folders and the cached index are `common/lmeval_tasks.py`'s (calibration's `task:` sources use the
same); an index over only our folders is tried first, lm-eval's full one only for names outside them.
"""

from __future__ import annotations

from pathlib import Path

from emo_prune.common.lmeval_tasks import builtin_tasks_dir, index_for, quiet_lm_eval, recipes_dir, task_index
from emo_prune.errors import EvalError

__all__ = ["builtin_tasks_dir", "quiet_lm_eval", "recipes_dir", "task_manager"]


def task_manager(tasks: list[str], include_paths: list[str | Path] = ()):  # noqa: ANN201
    """A TaskManager that knows every name in `tasks` (ours first, then lm-eval's own); EvalError if none does."""
    paths = [builtin_tasks_dir(), *(Path(p) for p in include_paths)]
    for path in paths:
        if not path.is_dir():
            raise EvalError(f"task include path {path} is not a folder")
    key = tuple(str(p.resolve()) for p in paths)
    with quiet_lm_eval():
        manager = index_for(tasks, key)
    unknown = [t for t in tasks if t not in manager.all_tasks and not Path(t).is_file()]
    if unknown:
        ours = sorted(task_index(key, False).all_tasks)
        raise EvalError(
            f"unknown lm-eval task(s): {', '.join(unknown)}; the offline tasks are {', '.join(ours)} "
            f"(`lm-eval ls tasks` lists lm-eval's own; add folders of task YAMLs with --include-path)"
        )
    from emo_prune.eval.taskdata_check import check_task_data

    check_task_data(manager, tasks)  # data that cannot load offline: refused now, not after retries
    return manager
