"""Evaluation through lm-eval's own interfaces (TaskManager with the offline tasks of `recipes/tasks/`),
and the comparison of a pruned model with its original. Every lm-eval adapter lives here: the HFLM over
our loaded model (`lm.py`), the pool model (`pool_lm.py`), the llama.cpp model (`llamacpp_lm.py`)."""

from emo_prune.eval.compare import MetricDelta, compare_metric
from emo_prune.eval.harness import EvalSettings, evaluate, evaluate_model, write_report
from emo_prune.eval.results import EvalReport, MetricScore, ModelEval, TaskScores, compare
from emo_prune.eval.tasks import builtin_tasks_dir, recipes_dir
from emo_prune.models.loading import LoadSettings, load_model

__all__ = [
    "EvalReport",
    "EvalSettings",
    "LoadSettings",
    "MetricDelta",
    "MetricScore",
    "ModelEval",
    "TaskScores",
    "builtin_tasks_dir",
    "compare",
    "compare_metric",
    "evaluate",
    "evaluate_model",
    "load_model",
    "recipes_dir",
    "write_report",
]
