"""Dataset loader for the offline tasks in this folder (lm-eval `custom_dataset`).

Reads JSONL files from `data/` beside this file, wherever lm-eval is started from (lm-eval resolves
`dataset_kwargs.data_files` against the working directory, so plain `dataset_path: json` would not).
Each record goes to the split named by its "split" field ("test" when absent). Needs only `datasets`:
`lm_eval --include_path recipes/tasks` works without emo-prune installed.
"""

import json
from pathlib import Path

import datasets

HERE = Path(__file__).resolve().parent


def load_jsonl(data_file, **_metadata):
    """DatasetDict of the records of HERE/data_file, grouped by their "split" field."""
    splits = {}
    with open(HERE / data_file, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                record = json.loads(line)
                splits.setdefault(record.pop("split", "test"), []).append(record)
    return datasets.DatasetDict({name: datasets.Dataset.from_list(rows) for name, rows in splits.items()})


def answer_bits_per_byte(doc, results):
    """A context -> answer request's (log-likelihood, bytes of the answer), for the bits_per_byte aggregation."""
    loglikelihood, _is_greedy = results[0]
    return {"bits_per_byte": (loglikelihood, len(doc["answer"].encode("utf-8")))}
