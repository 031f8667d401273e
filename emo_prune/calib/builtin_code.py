"""`builtin:code`: the running Python's standard-library sources, one module file = one document.

Deterministic for a given Python installation: a sorted walk of `sysconfig` "stdlib", skipping
site-packages, caches and the CPython test suite (huge, repetitive), and files under 200 bytes.
"""

from __future__ import annotations

import os
import sysconfig
from collections.abc import Iterator
from pathlib import Path

SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__", "test", "tests", "idle_test", "ensurepip"}
MIN_BYTES = 200


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_modules() -> Iterator[Path]:
    """Every standard-library .py file, in sorted walk order."""
    for folder, dirnames, filenames in os.walk(stdlib_root()):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("config-"))
        for name in sorted(filenames):
            if name.endswith(".py"):
                yield Path(folder) / name


def code_texts() -> list[str]:
    texts = []
    for path in stdlib_modules():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue  # a few stdlib files are latin-1 test fixtures; they are not worth a special case
        if len(text) >= MIN_BYTES:
            texts.append(text)
    return texts
