"""Statistics files emo-prune writes (a profile, a pool index), read back as untrusted input.

Both are safetensors files whose `__metadata__` carries one JSON entry under the file kind's key. Read
order matters: the header is validated first (`read_header`: a regular file, well-formed entries,
`__metadata__` a str -> str map) and the kind's key looked up before any tensor is decoded, so a model
shard passed by mistake is named as "not a profile" instead of failing in a dtype numpy lacks (bf16).
Every statistic is a sum or a mean of non-negative, finite numbers; `check_statistic` refuses any other
value (a NaN or negative mass would rank experts backwards and still produce a plan).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from emo_prune.errors import CheckpointError, EmoPruneError
from emo_prune.io.safetensors_header import read_header


def read_stats_file(
    path: Path, meta_key: str, framework: str, what: str, error: type[EmoPruneError], rebuild: str
) -> tuple[str, dict[str, Any]]:
    """(the JSON text under `meta_key`, every tensor) of the `what` file at `path`, or `error` naming it.

    `rebuild` says how to make a good one ("profile the model again")."""
    from safetensors import safe_open

    if not path.exists():
        raise error(f"{what} not found: {path}")
    try:
        header = read_header(path)
    except CheckpointError as exc:
        raise error(f"{path} is not a readable {what}: {exc}") from None
    raw = header.metadata.get(meta_key)
    if raw is None:
        model = " (it looks like model weights)" if header.tensors and "format" in header.metadata else ""
        raise error(
            f"{path} is not an emo-prune {what}: its header has no {meta_key} metadata{model}; pass the {what} file emo-prune wrote, or {rebuild}"
        )
    try:
        with safe_open(str(path), framework=framework) as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise error(f"{path} is not a readable {what}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return raw, tensors


def check_statistic(name: str, values: np.ndarray, where: str, error: type[EmoPruneError], rebuild: str) -> None:
    """Refuse a statistic tensor holding a NaN, an infinity or a negative value, naming its first bad entry."""
    bad = ~np.isfinite(values) | (np.nan_to_num(values, nan=0.0) < 0)
    if bad.any():
        at = tuple(int(i) for i in np.argwhere(bad)[0])
        raise error(
            f"{where}: tensor {name!r} holds {float(values[at])} at index {list(at)}, a non-finite or negative "
            f"statistic (they are finite sums and means of non-negative numbers): the file is corrupt or was edited; {rebuild}"
        )
