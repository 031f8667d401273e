"""Calibration text from outside the machine: Hugging Face datasets and lm-eval tasks.

Both need their data on disk or a network; without either they fail with a CalibrationError that says so.
`task:NAME` builds AI2-style calibration text: for each validation (dev) document of the task, the
few-shot prompt followed by the gold answer; `task:NAME:train` does the same with the task's training
documents (what AI2 fine-tunes a selected model on). A task's test documents are for scoring and never
read here. NAME is one of the offline tasks of `recipes/tasks/`, one of lm-eval's own, or a task YAML
file's path (the user's own task, offline when its data is local).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emo_prune.errors import CalibrationError

NUM_FEWSHOT = 5
TASK_SPLITS = ("validation", "train")  # the task documents calibration and training may read; never test
FEWSHOT_SEED = 1234  # lm-eval's own default (simple_evaluate's fewshot_random_seed): the same prompts every run


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


def task_texts(name: str, split: str = "validation", num_fewshot: int = NUM_FEWSHOT) -> list[str]:
    return [context + answer for context, answer in task_pairs(name, split, num_fewshot)]


def _split_docs(task: Any, task_name: str, split: str) -> Any:
    """The task's documents of `split` (one of TASK_SPLITS), or a CalibrationError naming what it has."""
    splits = {
        "validation": (task.has_validation_docs, task.validation_docs),
        "train": (task.has_training_docs, task.training_docs),
    }
    has_docs, docs = splits[split]
    if has_docs():
        return docs()
    others = [f"task:{task_name}:{s}" for s, (has_other, _) in splits.items() if s != split and has_other()]
    hint = f"; it has {others[0]}" if others else " (its test split is for scoring, never for training)"
    raise CalibrationError(f"lm-eval task {task_name!r} has no {split} split to calibrate or train on{hint}")


def task_pairs(name: str, split: str = "validation", num_fewshot: int = NUM_FEWSHOT) -> list[tuple[str, str]]:
    """(few-shot prompt, target delimiter + gold answer) of each `split` doc of an lm-eval task.

    `name`: a task of `recipes/tasks/` (the offline ones `eval` scores with), one of lm-eval's own, or the
    path of a task YAML file (a task of the user's, read offline). `split`: "validation" or "train".
    """
    from emo_prune.common.lmeval_tasks import builtin_tasks_dir, index_for, is_task_file, quiet_lm_eval

    if is_task_file(name) and not Path(name).is_file():
        raise CalibrationError(f"task:{name}: no such task YAML file")
    try:
        with quiet_lm_eval():
            manager = index_for([name], (str(builtin_tasks_dir().resolve()),))
            tasks = manager.load([name])["tasks"]  # {leaf task name: Task}, groups and tags expanded
    except Exception as exc:  # lm-eval raises KeyError / datasets errors / ConnectionError offline
        raise CalibrationError(
            f"cannot load lm-eval task {name!r}: {exc}. The task's dataset must be reachable or in the local Hugging Face cache"
        ) from exc
    texts: list[tuple[str, str]] = []
    for task_name, task in tasks.items():
        docs = _split_docs(task, task_name, split)
        task.set_fewshot_seed(FEWSHOT_SEED)  # else each process samples other shots: other data, another digest
        for doc in docs:
            try:
                context = _fewshot_context(task, doc, num_fewshot)
            except ValueError as exc:  # random.sample: fewer few-shot docs than shots
                raise CalibrationError(
                    f"lm-eval task {task_name!r}: cannot build {num_fewshot}-shot prompts ({exc}); give it at "
                    f"least {num_fewshot} few-shot documents (a fewshot_split, or more {split} docs)"
                ) from exc
            if isinstance(context, list):
                context = "\n".join(str(c) for c in context)
            delimiter = getattr(getattr(task, "config", None), "target_delimiter", " ")
            texts.append((context, f"{delimiter}{_answer(task, doc)}"))
    return texts


def _fewshot_context(task: Any, doc: dict, num_fewshot: int) -> Any:
    try:
        return task.fewshot_context(doc, num_fewshot)
    except TypeError:  # older Task.fewshot_context signature
        return task.fewshot_context(doc, num_fewshot, rnd=None)
