"""Calibration text from outside the machine: Hugging Face datasets and lm-eval tasks.

Both need their data on disk or a network; offline they fail with a CalibrationError that says so.
`task:NAME` builds AI2-style calibration text: for each validation (dev) document of the task, the
few-shot prompt followed by the gold answer.
"""

from __future__ import annotations

from typing import Any

from emo_prune.errors import CalibrationError

NUM_FEWSHOT = 5


def hf_texts(name: str, config: str | None, split: str | None) -> list[str]:
    try:
        import datasets
    except ImportError as exc:
        raise CalibrationError(f"hf:{name} needs the `datasets` package: pip install datasets") from exc
    try:
        data = datasets.load_dataset(name, config, split=split or "train")
    except Exception as exc:  # datasets raises many unrelated types for "offline" / "not found"
        raise CalibrationError(
            f"cannot load Hugging Face dataset {name!r} (config {config}, split {split or 'train'}): {exc}. "
            f"Offline machines need the dataset in the local cache; or export it to JSONL and pass that file"
        ) from exc
    if "text" not in data.column_names:
        raise CalibrationError(f"hf:{name} has no 'text' column (columns: {', '.join(data.column_names)})")
    return [t for t in data["text"] if isinstance(t, str)]


def _answer(task: Any, doc: dict) -> str:
    target = task.doc_to_target(doc)
    if task.OUTPUT_TYPE == "multiple_choice":
        choices = task.doc_to_choice(doc)
        if isinstance(target, int):
            target = choices[target]
        elif isinstance(target, list):
            target = choices[target[0]] if isinstance(target[0], int) else target[0]
    elif isinstance(target, list):
        target = target[0]
    return str(target)


def task_texts(name: str, num_fewshot: int = NUM_FEWSHOT) -> list[str]:
    return [context + answer for context, answer in task_pairs(name, num_fewshot)]


def task_pairs(name: str, num_fewshot: int = NUM_FEWSHOT) -> list[tuple[str, str]]:
    """(few-shot prompt, target delimiter + gold answer) of each validation doc of lm-eval task `name`."""
    try:
        from lm_eval.tasks import TaskManager, get_task_dict

        tasks = get_task_dict([name], TaskManager())
    except Exception as exc:  # lm-eval raises KeyError / datasets errors / ConnectionError offline
        raise CalibrationError(
            f"cannot load lm-eval task {name!r}: {exc}. The task's dataset must be reachable or in the local Hugging Face cache"
        ) from exc
    texts: list[tuple[str, str]] = []
    for task_name, task in _leaf_tasks(tasks):
        if not task.has_validation_docs():
            raise CalibrationError(f"lm-eval task {task_name!r} has no validation/dev split to calibrate on")
        for doc in task.validation_docs():
            try:
                context = task.fewshot_context(doc, num_fewshot)
            except TypeError:  # older Task.fewshot_context signature
                context = task.fewshot_context(doc, num_fewshot, rnd=None)
            if isinstance(context, list):
                context = "\n".join(str(c) for c in context)
            delimiter = getattr(getattr(task, "config", None), "target_delimiter", " ")
            texts.append((context, f"{delimiter}{_answer(task, doc)}"))
    return texts


def _leaf_tasks(tasks: dict) -> list[tuple[str, Any]]:
    leaves = []
    for key, value in tasks.items():
        if isinstance(value, dict):
            leaves.extend(_leaf_tasks(value))
        else:
            leaves.append((getattr(key, "group_name", None) or str(key), value))
    return leaves
