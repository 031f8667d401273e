"""Lazy package namespaces: `from emo_prune.select import Plan` imports only the module defining it.

The package `__init__` files list what they export and where it lives; a name is imported on first
access (PEP 562 module `__getattr__`). So the header-only commands (`inspect`, `select --method mass`,
...) never import the torch-backed modules that sit in the same packages.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """(`__getattr__`, `__dir__`) for `package`; `exports` maps a name to the submodule defining it."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        setattr(sys.modules[package], name, value)  # later look-ups skip this hook
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__


def exports_of(modules: dict[str, list[str]]) -> dict[str, str]:
    """{"emo_prune.io.checkpoint": ["Checkpoint", ...]} -> {"Checkpoint": "emo_prune.io.checkpoint", ...}."""
    return {name: module for module, names in modules.items() for name in names}
