"""Whether each task's data can be read here, decided before any model loads.

lm-eval reads a task's data with `datasets.load_dataset(dataset_path, dataset_name)`. Offline, without
HF_DATASETS_OFFLINE set, datasets and huggingface_hub retry the Hub with backoff: `eval --tasks gsm8k`
took 47 s and printed six retry lines before its error (issue 25). Here a task is refused at once when
its dataset is a Hub dataset that is in neither Hugging Face cache AND the Hub cannot be used (declared
offline, or a 1-second connection to it fails). Local data (`json` / `csv` / ... with data_files, a
folder) and cached datasets pass; with the Hub reachable, lm-eval downloads as usual.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from emo_prune.errors import EvalError

# datasets' packaged builders: their data is local files (data_files), never a Hub repository
LOCAL_BUILDERS = {"json", "csv", "parquet", "text", "arrow", "pandas", "imagefolder", "audiofolder", "webdataset"}
HUB_HOST, HUB_PORT, PROBE_SECONDS = "huggingface.co", 443, 1.0
_TRUE = {"1", "true", "yes", "on"}


def declared_offline() -> bool:
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def hub_reachable() -> bool:
    """One TCP connection to the Hub within PROBE_SECONDS (no retries: a refusal costs at most that)."""
    try:
        with socket.create_connection((HUB_HOST, HUB_PORT), timeout=PROBE_SECONDS):
            return True
    except OSError:
        return False


def cached(dataset_path: str) -> bool:
    """The dataset is in the Hub cache (hub/datasets--org--name) or datasets' own cache (org___name)."""
    from datasets import config as datasets_config
    from huggingface_hub import constants

    hub = Path(constants.HF_HUB_CACHE) / f"datasets--{dataset_path.replace('/', '--')}"
    own = Path(datasets_config.HF_DATASETS_CACHE) / dataset_path.replace("/", "___")
    return hub.is_dir() or own.is_dir()


def dataset_of(manager: Any, task: str) -> str | None:
    """The `dataset_path` of a task's config (includes followed), None for groups, tags and Python tasks."""
    entry = manager.task_index.get(task)
    if entry is None or entry.yaml_path is None or getattr(entry.kind, "name", "") != "TASK":
        return None
    cfg = entry.cfg or {}
    if "dataset_path" not in cfg:
        from lm_eval.tasks._yaml_loader import load_yaml

        cfg = load_yaml(entry.yaml_path, resolve_func=False, recursive=True)
    path = cfg.get("dataset_path")
    return path if isinstance(path, str) else None


def missing_offline(manager: Any, tasks: list[str]) -> list[tuple[str, str]]:
    """(task, dataset) of each task whose Hub dataset is not cached here."""
    found = []
    for task in tasks:
        path = dataset_of(manager, task)
        if path is None or path in LOCAL_BUILDERS or Path(path).expanduser().exists() or cached(path):
            continue
        found.append((task, path))
    return found


def check_task_data(manager: Any, tasks: list[str]) -> None:
    """EvalError, in one line and without touching the network beyond one probe, for tasks whose data
    cannot be read: not cached, and the Hub declared offline or unreachable."""
    missing = missing_offline(manager, tasks)
    if not missing:
        return
    why = "HF_HUB_OFFLINE / HF_DATASETS_OFFLINE is set" if declared_offline() else None
    if why is None and hub_reachable():
        return  # lm-eval downloads it
    why = why or f"the Hugging Face Hub ({HUB_HOST}) cannot be reached"
    listed = ", ".join(f"{task} ({path})" for task, path in missing)
    raise EvalError(
        f"task data not in the Hugging Face cache and {why}: {listed}; download it where there is network "
        f"(`hf download --repo-type dataset {missing[0][1]}`), or use the offline tasks (--tasks emo_offline)"
    )
