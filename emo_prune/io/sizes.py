"""Sizes as users write them: '5GB', '500MB', '2GiB' or a byte count -> bytes (shard caps, cache budgets)."""

from __future__ import annotations

import re

from emo_prune.errors import OutputError

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def parse_size(value: str | int, what: str = "size") -> int:
    """'5GB' -> 5_000_000_000, '512MiB' -> 536870912, 1000 -> 1000 (decimal units, as transformers).
    `what` names the value in messages: the flag or field it came from (`--max-shard-size`)."""
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.match(value)
        if not match:
            raise OutputError(f"cannot read {what} {value!r}; write it like 5GB, 500MB or 2GiB")
        unit = (match.group(2) or "").lower().removesuffix("b")
        size = int(float(match.group(1)) * _UNITS[unit])
    if size <= 0:
        raise OutputError(f"{what} {value!r} must be positive; write it like 5GB, 500MB or 2GiB")
    return size
