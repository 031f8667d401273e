"""English for counted things in messages: `plural(1, "shard")` -> "1 shard", `plural(3, "shard")` -> "3 shards"."""

from __future__ import annotations


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else many or word + 's'}"
