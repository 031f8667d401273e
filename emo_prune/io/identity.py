"""Model identity: sha256 of every shard, so a profile or a plan can tell which model it was made from.

Hashing a 27 GB model takes about a minute, so digests are cached per (absolute path, size, mtime) in
`$EMO_PRUNE_CACHE` (default ~/.cache/emo-prune/sha256.json); a changed file gets hashed again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from emo_prune.errors import OutputError
from emo_prune.io.atomic import atomic_write_text
from emo_prune.io.checkpoint import Checkpoint

CHUNK = 16 * 1024 * 1024


def cache_dir() -> Path:
    return Path(os.environ.get("EMO_PRUNE_CACHE", Path.home() / ".cache" / "emo-prune"))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _cached_sha256(path: Path) -> str:

    path = Path(path).resolve()
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    cache_file = cache_dir() / "sha256.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, json.JSONDecodeError):
        cache = {}
    if key in cache:
        return cache[key]
    value = sha256_file(path)
    cache[key] = value
    try:
        atomic_write_text(cache_file, json.dumps(cache))
    except OutputError:
        pass  # a read-only home only costs a re-hash next time
    return value


def model_identity(checkpoint: Checkpoint) -> dict[str, Any]:
    """{"path", "model_type", "shards": {file: sha256}, "digest": sha256 over the shard digests}."""
    shards = {name: _cached_sha256(checkpoint.shard_path(name)) for name in sorted(checkpoint.shards)}
    combined = hashlib.sha256("".join(f"{k}:{v}\n" for k, v in shards.items()).encode()).hexdigest()
    return {
        "path": str(checkpoint.path.resolve()),
        "model_type": checkpoint.config.get("model_type"),
        "shards": shards,
        "digest": combined,
    }
