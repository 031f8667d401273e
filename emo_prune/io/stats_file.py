"""The statistics inside emo-prune's artifacts (a profile, a pool index), checked as untrusted input.

Every statistic is a sum or a mean of non-negative, finite numbers; `check_statistic` refuses any other
value (a NaN or negative mass would rank experts backwards and still produce a plan). Reading the file
itself, header and format first, is `emo_prune.io.artifact`.
"""

from __future__ import annotations

import numpy as np

from emo_prune.errors import EmoPruneError


def check_statistic(name: str, values: np.ndarray, where: str, error: type[EmoPruneError], rebuild: str) -> None:
    """Refuse a statistic tensor holding a NaN, an infinity or a negative value, naming its first bad entry."""
    bad = ~np.isfinite(values) | (np.nan_to_num(values, nan=0.0) < 0)
    if bad.any():
        at = tuple(int(i) for i in np.argwhere(bad)[0])
        raise error(
            f"{where}: tensor {name!r} holds {float(values[at])} at index {list(at)}, a non-finite or negative "
            f"statistic (they are finite sums and means of non-negative numbers): the file is corrupt or was edited; {rebuild}"
        )
