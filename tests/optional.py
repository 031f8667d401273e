"""Optional test dependencies: skipped on a developer's machine without them, required in CI.

The `dev` extra installs every one of them, so under CI (the `CI` environment variable, set by .ci/run's
callers and by GitHub Actions) a missing module is an install bug, not a reason to skip.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def require(module: str) -> ModuleType:
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module)
