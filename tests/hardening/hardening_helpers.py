"""What every hardening test asserts: one error line with exit 1, and nothing outside the target changed."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import struct
from pathlib import Path
from typing import Any


def snapshot(root: Path) -> dict[str, str]:
    """relative path -> sha256 of a file, 'dir', 'special <type>' or 'link -> target', for everything under `root`."""
    found = {}
    for dirpath, dirs, names in os.walk(root):
        for name in [*dirs, *names]:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[rel] = f"link -> {os.readlink(path)}"
            elif path.is_dir():
                found[rel] = "dir"
            elif not path.is_file():  # a FIFO or device: reading it could block, its type is what matters
                found[rel] = f"special {stat.S_IFMT(path.stat().st_mode):o}"
            else:
                found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


# off a terminal, progress is log lines on stderr ("extracting: started (0.0s)", emo_prune.cli.console.LineProgress)
PROGRESS_LINE = re.compile(r"^[^:]+: (started|finished|\d+%) \(\d+\.\ds(, .*)?\)$")


def one_line_error(result: Any, *fragments: str) -> str:
    """Assert the CLI failed with exit 1 and exactly one line on stderr, besides progress lines, holding
    every fragment; return it."""
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    lines = [line for line in result.stderr.strip().splitlines() if not PROGRESS_LINE.match(line)]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def read_raw_header(path: Path) -> tuple[dict, bytes]:
    """(header JSON, data bytes) of a safetensors file."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def write_raw_header(path: Path, header: dict, data: bytes) -> None:
    """Write `header` + `data` as a safetensors file, with no checks (to make files that lie)."""
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + data)


INDEX = "model.safetensors.index.json"


def set_config(model: Path, **fields: Any) -> None:
    """Overwrite fields of `model`'s config.json (to make configs that lie)."""
    config = json.loads((model / "config.json").read_text())
    config.update(fields)
    (model / "config.json").write_text(json.dumps(config))


def drop_from_index(model: Path, name: str) -> None:
    """Remove tensor `name` from `model`'s index (the shard keeps its bytes): a checkpoint missing that tensor."""
    index = json.loads((model / INDEX).read_text())
    del index["weight_map"][name]
    (model / INDEX).write_text(json.dumps(index))


def hf_snapshot(source: Path, hub: Path) -> Path:
    """A copy of `source` in the Hugging Face cache layout under `hub`, every file a link into the blob store:
    hub/models--org--tiny/snapshots/0123abc/<file> -> ../../blobs/blob-<file>. Returns the snapshot folder."""
    import shutil

    repo = hub / "models--org--tiny"
    snapshot_dir = repo / "snapshots" / "0123abc"
    (repo / "blobs").mkdir(parents=True)
    snapshot_dir.mkdir(parents=True)
    for f in source.iterdir():
        shutil.copyfile(f, repo / "blobs" / f"blob-{f.name}")
        (snapshot_dir / f.name).symlink_to(f"../../blobs/blob-{f.name}")
    return snapshot_dir
